"""JWTs in Supabase's format: HS256, claims sub, role, aud "authenticated", exp, iat, email.

A token signed with the project's JWT secret is accepted the same by this
backend and by Supabase's own services, so the two can share users.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import jwt

ALGORITHM = "HS256"
AUDIENCE = "authenticated"
# Seconds of clock difference tolerated between hosts.
LEEWAY_S = 5


class InvalidToken(Exception):
    """Missing, malformed, forged or expired: the caller answers 401."""


def issue_access_token(
    secret: str, user_id: str, email: str, ttl_s: int, *, now: float | None = None
) -> str:
    """A signed access token for ``user_id``, valid ``ttl_s`` seconds."""
    issued = int(now if now is not None else time.time())
    claims = {
        "sub": user_id,
        "role": "authenticated",
        "aud": AUDIENCE,
        "email": email,
        "iat": issued,
        "exp": issued + ttl_s,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_access_token(secret: str, token: str) -> dict[str, Any]:
    """The claims of a valid token, or InvalidToken (the reason is safe to log)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],  # never "none", never whatever the header says
            audience=AUDIENCE,
            leeway=LEEWAY_S,
            options={"require": ["sub", "role", "exp", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.InvalidTokenError as error:
        raise InvalidToken(f"invalid token: {type(error).__name__}") from None
    if claims.get("role") != "authenticated":
        # service_role tokens are for Supabase's server side, never a browser's.
        raise InvalidToken("token role is not authenticated")
    return claims


def new_refresh_token() -> tuple[str, str]:
    """A fresh opaque refresh token and the hash that is stored (never the token itself)."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    """The stored form of a refresh token (sha256: it is random, no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()
