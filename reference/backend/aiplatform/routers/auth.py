"""/api/auth: signup, login, refresh, logout, me (and ping, for deploy checks).

signup/login/refresh run as service_role: there is no user yet to run as,
exactly like Supabase's auth server. Everything after login runs as the user.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from psycopg import AsyncConnection
from psycopg import errors as pg_errors
from pydantic import BaseModel, Field

from aiplatform.auth.deps import UNAUTHORIZED_HEADERS, current_user
from aiplatform.auth.passwords import hash_password, verify_password
from aiplatform.auth.tokens import hash_refresh_token, issue_access_token, new_refresh_token
from aiplatform.config import Settings
from aiplatform.db import as_service, as_user
from aiplatform.db.deps import require_database
from aiplatform.ratelimit import rate_limited
from aiplatform.schemas import EMAIL_PATTERN, Strict, UserOut

router = APIRouter(prefix="/api/auth", tags=["auth"])

USER_COLUMNS = "id, email, display_name, is_admin, created_at"


class Credentials(Strict):
    """Email and password."""

    email: str = Field(max_length=254, pattern=EMAIL_PATTERN)
    password: str = Field(min_length=8, max_length=256)


class SignupIn(Credentials):
    """A new account."""

    display_name: str = Field("", max_length=100)


class RefreshIn(Strict):
    """A refresh token from signup, login or an earlier refresh (each works once)."""

    refresh_token: str = Field(min_length=16, max_length=200)


class SessionOut(BaseModel):
    """Tokens for a signed-in user."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str
    user: UserOut


async def _session(conn: AsyncConnection[Any], settings: Settings, user: dict[str, Any]) -> dict:
    refresh, refresh_hash = new_refresh_token()
    await conn.execute(
        "insert into refresh_tokens (token_hash, user_id, expires_at) values (%s, %s, %s)",
        (refresh_hash, user["id"],
         datetime.now(UTC) + timedelta(seconds=settings.refresh_ttl_s)),
    )
    access = issue_access_token(settings.jwt_secret, str(user["id"]), user["email"],
                                settings.access_ttl_s)
    return {"access_token": access, "token_type": "bearer", "expires_in": settings.access_ttl_s,
            "refresh_token": refresh, "user": user}


def _unauthorized(reason: str) -> HTTPException:
    return HTTPException(401, reason, headers=UNAUTHORIZED_HEADERS)


@router.post("/signup", status_code=201, response_model=SessionOut,
             dependencies=[Depends(require_database), Depends(rate_limited("signup"))])
async def signup(body: SignupIn, request: Request) -> dict:
    """Create an account (and its first project); answers with a session."""
    settings: Settings = request.app.state.settings
    password_hash = await hash_password(body.password)
    try:
        async with as_service() as conn:
            cursor = await conn.execute(
                f"insert into users (email, password_hash, display_name) values (%s, %s, %s)"
                f" returning {USER_COLUMNS}",
                (body.email.lower(), password_hash, body.display_name),
            )
            user = await cursor.fetchone()
            assert user is not None
            await conn.execute("insert into projects (owner_id, name) values (%s, %s)",
                               (user["id"], "My project"))
            return await _session(conn, settings, user)
    except pg_errors.UniqueViolation:
        raise HTTPException(409, "email already registered") from None


@router.post("/login", response_model=SessionOut,
             dependencies=[Depends(require_database), Depends(rate_limited("login"))])
async def login(body: Credentials, request: Request) -> dict:
    """Email + password → a session; 401 for an unknown email or a wrong password alike."""
    settings: Settings = request.app.state.settings
    async with as_service() as conn:
        cursor = await conn.execute(
            f"select {USER_COLUMNS}, password_hash from users where email = %s",
            (body.email.lower(),))
        row = await cursor.fetchone()
        if not await verify_password(row["password_hash"] if row else None, body.password):
            raise _unauthorized("invalid email or password")
        assert row is not None
        row.pop("password_hash")
        return await _session(conn, settings, row)


@router.post("/refresh", response_model=SessionOut,
             dependencies=[Depends(require_database),
                           Depends(rate_limited("refresh"))])
async def refresh(body: RefreshIn, request: Request) -> dict:
    """Trade a refresh token for a new session; the old refresh token stops working."""
    settings: Settings = request.app.state.settings
    async with as_service() as conn:
        cursor = await conn.execute(
            "update refresh_tokens set revoked_at = now()"
            " where token_hash = %s and revoked_at is null and expires_at > now()"
            " returning user_id", (hash_refresh_token(body.refresh_token),))
        used = await cursor.fetchone()
        if used is None:
            raise _unauthorized("invalid refresh token")
        cursor = await conn.execute(f"select {USER_COLUMNS} from users where id = %s",
                                    (used["user_id"],))
        user = await cursor.fetchone()
        if user is None:
            raise _unauthorized("invalid refresh token")
        return await _session(conn, settings, user)


@router.post("/logout", status_code=204, dependencies=[Depends(require_database)])
async def logout(body: RefreshIn) -> Response:
    """Revoke a refresh token (the access token simply expires); 204 whether it was valid or not."""
    async with as_service() as conn:
        await conn.execute(
            "update refresh_tokens set revoked_at = now()"
            " where token_hash = %s and revoked_at is null",
            (hash_refresh_token(body.refresh_token),))
    return Response(status_code=204)


@router.get("/me", response_model=UserOut, dependencies=[Depends(require_database)])
async def me(claims: dict = Depends(current_user)) -> dict:
    """The signed-in user, read as that user (RLS)."""
    async with as_user(claims) as conn:
        cursor = await conn.execute(f"select {USER_COLUMNS} from users where id = auth.uid()")
        user = await cursor.fetchone()
    if user is None:
        raise _unauthorized("user no longer exists")
    return user


@router.api_route("/ping", methods=["GET", "HEAD"])
async def ping() -> dict[str, bool]:
    """Answers without a database: deploy checks probe the auth route through nginx."""
    return {"ok": True}
