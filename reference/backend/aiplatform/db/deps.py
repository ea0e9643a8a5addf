"""FastAPI dependency for the data endpoints: 503 before anything else without a database."""

from __future__ import annotations

from aiplatform.db import pool


def require_database() -> None:
    """Raise DatabaseNotConfigured (→ 503) when DATABASE_URL is not set.

    Runs before the token check, so without a database every data endpoint
    answers the same 503, whoever asks.
    """
    pool.get()
