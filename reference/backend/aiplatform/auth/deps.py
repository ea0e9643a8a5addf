"""FastAPI dependencies: the caller's verified claims.

    @router.get("/things")
    async def things(claims: dict = Depends(current_user)): ...
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aiplatform.auth.tokens import InvalidToken, verify_access_token

_bearer = HTTPBearer(auto_error=False, description="Supabase-format access token (HS256)")

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


async def current_user(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> dict[str, Any]:
    """The claims of the request's bearer token; 401 when it is missing, forged or expired."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers=UNAUTHORIZED_HEADERS)
    try:
        claims = verify_access_token(request.app.state.settings.jwt_secret, credentials.credentials)
    except InvalidToken as error:
        raise HTTPException(401, str(error), headers=UNAUTHORIZED_HEADERS) from None
    request.state.user_id = claims["sub"]
    return claims
