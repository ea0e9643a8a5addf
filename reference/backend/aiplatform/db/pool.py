"""The process's one connection pool (psycopg_pool.AsyncConnectionPool).

Opened by the app's lifespan (main.create_app) and closed on shutdown. The
pool connects as the application's LOGIN role, which owns nothing and cannot
bypass RLS; every query runs inside ``as_user`` / ``as_service``.
"""

from __future__ import annotations

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from aiplatform.config import Settings


class DatabaseNotConfigured(RuntimeError):
    """DATABASE_URL is not set: data endpoints answer 503."""


_pool: AsyncConnectionPool | None = None


async def start(settings: Settings) -> AsyncConnectionPool | None:
    """Open the pool when DATABASE_URL is set; returns it (None without a database).

    Does not wait for the first connection: an instance whose database is down
    still starts, and its health says the database is unreachable.
    """
    global _pool
    if not settings.database_url or _pool is not None:
        return _pool
    _pool = AsyncConnectionPool(
        settings.database_url,
        min_size=settings.pool_min,
        max_size=settings.pool_max,
        # autocommit: `conn.transaction()` is then exactly one BEGIN/COMMIT.
        kwargs={"autocommit": True, "row_factory": dict_row, "connect_timeout": 5,
                "prepare_threshold": 5 if settings.prepared_statements else None},
        # A connection broken by a database restart is dropped on checkout,
        # not handed to a request that would then fail.
        check=AsyncConnectionPool.check_connection,
        timeout=settings.pool_timeout_s,
        open=False,
        name="aiplatform",
    )
    await _pool.open(wait=False)
    return _pool


async def stop() -> None:
    """Close the pool (lifespan shutdown); a no-op without one."""
    global _pool
    if _pool is not None:
        pool, _pool = _pool, None
        await pool.close()


def get() -> AsyncConnectionPool:
    """The open pool, or DatabaseNotConfigured."""
    if _pool is None:
        raise DatabaseNotConfigured("database not configured")
    return _pool
