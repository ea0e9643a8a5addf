"""Run a request's queries as the requesting user, the way PostgREST does.

One transaction per use: ``role`` and ``request.jwt.claims`` are set LOCAL
(``set_config(..., true)``), so they vanish at COMMIT/ROLLBACK and a pooled
connection never carries one user's identity into the next request.

BEGIN and the identity travel in ONE round trip (a simple-protocol query of
two statements, the values quoted as literals): a request pays BEGIN+identity,
its queries, COMMIT, instead of BEGIN, identity, queries, COMMIT.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql

from aiplatform.db import pool

# The only roles a transaction may switch to: the value is interpolated into a
# role switch, so anything else (a forged claim) is refused before SQL.
DATABASE_ROLES = frozenset({"anon", "authenticated", "service_role"})

_BEGIN_AS = sql.SQL(
    "begin; select set_config('role', {}, true), set_config('request.jwt.claims', {}, true)"
)


@asynccontextmanager
async def as_user(claims: Mapping[str, Any] | None) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection inside a transaction running as ``claims['role']`` with those claims.

    ``claims`` None means an anonymous caller (role anon, no sub). Rows come
    back as dicts. Commits when the block ends, rolls back on an exception.
    """
    claims = dict(claims) if claims else {"role": "anon"}
    role = claims.get("role")
    if role not in DATABASE_ROLES:
        raise PermissionError(f"role {role!r} is not a database role")
    identity = _BEGIN_AS.format(sql.Literal(role),
                                sql.Literal(json.dumps(claims, separators=(",", ":"))))
    async with pool.get().connection() as conn:
        # No parameters: psycopg sends it with the simple protocol, both statements at once.
        await conn.execute(identity)
        try:
            yield conn
        except BaseException:
            # A broken connection cannot roll back: the pool discards it, the
            # request's own error is what the caller must see.
            with contextlib.suppress(psycopg.Error):
                await conn.rollback()
            raise
        await conn.commit()


@asynccontextmanager
async def as_service() -> AsyncIterator[AsyncConnection[Any]]:
    """A transaction as service_role (bypasses RLS): for trusted server-side work only.

    The auth endpoints (no user yet), the public widget and the Telegram
    webhook (keyed by widget id / bot secret, scoped in code) use it.
    """
    async with as_user({"role": "service_role"}) as conn:
        yield conn
