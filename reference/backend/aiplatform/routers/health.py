"""Health, version and the deploy rehearsal endpoints (/api/slow, /api/echo).

Health answers anyone who can reach /api/: it reports whether each setting
is present, never a value, and a database error without the DSN.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse
from psycopg import AsyncConnection

from aiplatform import __version__, config
from aiplatform.db import as_user, pool
from aiplatform.db.migrate import MigrationError, discover

router = APIRouter(tags=["health"])

MAX_SLEEP_MS = 10_000
DB_CHECK_TIMEOUT_S = 2.0
STARTED = time.monotonic()


def _short_reason(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    reason = text[0] if text else ""
    return f"{type(error).__name__}: {reason}"[:200] if reason else type(error).__name__


@functools.cache
def _known_migrations() -> tuple[str, ...] | None:
    # A release's files never change once deployed: read the folder once.
    try:
        return tuple(m.version for m in discover(config.MIGRATIONS_DIR))
    except MigrationError:
        return None


# Applied versions change only when a deploy migrates: health (polled by
# load balancers and benchmarks) reads them at most every few seconds.
APPLIED_TTL_S = 5.0
_applied: tuple[float, frozenset[str]] | None = None


async def _applied_versions() -> frozenset[str]:
    global _applied
    if _applied is not None and time.monotonic() - _applied[0] < APPLIED_TTL_S:
        return _applied[1]
    async with as_user(None) as conn:  # as anon, whom the policy lets read the list
        return await _read_applied(conn)


async def _read_applied(conn: AsyncConnection[Any]) -> frozenset[str]:
    global _applied
    cursor = await conn.execute(
        "select to_regclass('public.schema_migrations') is not null as ready")
    row = await cursor.fetchone()
    versions: frozenset[str] = frozenset()
    if row and row["ready"]:
        cursor = await conn.execute("select version from schema_migrations")
        versions = frozenset(r["version"] for r in await cursor.fetchall())
    _applied = (time.monotonic(), versions)
    return versions


async def database_status() -> dict[str, Any]:
    """Reachability and latency of the database, and the pending migrations."""
    try:
        pool.get()
    except RuntimeError:
        return {"status": "not configured"}
    started = time.monotonic()
    try:
        async with asyncio.timeout(DB_CHECK_TIMEOUT_S):
            # A plain pooled connection, no transaction nor role switch: reachability
            # is all this measures (checkout and one round trip).
            async with pool.get().connection() as conn:
                await conn.execute("select 1")
            latency_ms = round((time.monotonic() - started) * 1000, 2)
            applied = await _applied_versions()
    except Exception as error:  # any failure here is "unreachable", with its reason
        return {"status": "unreachable", "error": _short_reason(error)}
    known = _known_migrations()
    pending = None if known is None else len([v for v in known if v not in applied])
    return {"status": "ok", "latency_ms": latency_ms, "migrations": {"pending": pending}}


@router.api_route("/api/health", methods=["GET", "HEAD"])
async def health(request: Request) -> JSONResponse:
    """status, release, instance, pid, port, uptime, version, database, migrations, config."""
    settings: config.Settings = request.app.state.settings
    identity = {"release": settings.release, "instance": settings.instance}
    if config.failing():
        return JSONResponse({"status": "failing", **identity}, 503)
    database = await database_status()
    body: dict[str, Any] = {
        "status": "ok",
        **identity,
        "pid": os.getpid(),
        "port": settings.port,
        "uptime_s": round(time.monotonic() - STARTED, 3),
        "version": __version__,
        "database": {k: v for k, v in database.items() if k != "migrations"},
        "config": {**{name: bool(os.environ.get(name)) for name in config.REPORTED_CONFIG},
                   # As this process resolved them (JWT_SECRET may be SUPABASE_JWT_SECRET).
                   "DATABASE_URL": settings.database_configured,
                   "JWT_SECRET": not settings.jwt_secret_generated},
    }
    if "migrations" in database:
        body["migrations"] = database["migrations"]
    fanout = getattr(request.app.state, "fanout", None)
    if fanout is not None:
        body["realtime"] = {"listening": fanout.listening.is_set(),
                            "clients": len(fanout.subscribers)}
    if database["status"] == "unreachable":
        body["status"] = "failing"
        return JSONResponse(body, 503)
    return JSONResponse(body)


@router.api_route("/api/version", methods=["GET", "HEAD"])
async def version(request: Request) -> dict[str, str]:
    """Which release and instance answered."""
    settings: config.Settings = request.app.state.settings
    return {"release": settings.release, "instance": settings.instance}


@router.get("/api/slow")
async def slow(ms: str = "0") -> dict[str, int]:
    """Sleep ``ms`` (capped at 10 s) then answer: deploys check in-flight requests survive."""
    try:
        wanted = int(ms)
    except ValueError:
        raise HTTPException(400, "ms must be an integer") from None
    wanted = max(0, min(wanted, MAX_SLEEP_MS))
    await asyncio.sleep(wanted / 1000)
    return {"slept_ms": wanted}


# The body is read raw (any JSON value); the schema says so for API clients and fuzzers.
ANY_JSON_BODY = {"requestBody": {"required": True,
                                 "content": {"application/json": {"schema": {}}}}}


@router.post("/api/echo", openapi_extra=ANY_JSON_BODY)
async def echo(request: Request) -> JSONResponse:
    """The JSON body back (400 if it is not JSON; the middleware answers 413 over 1 MB)."""
    raw = await request.body()
    try:
        return JSONResponse(json.loads(raw))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise HTTPException(400, "body is not JSON") from None
