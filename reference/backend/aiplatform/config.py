"""Settings read from the environment (the release's ``.env``, loaded by PM2).

Read once per process: a release's configuration never changes while it runs,
and a changed ``.env`` takes effect through a restart, as on the production host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# reference/backend/: app.py, RELEASE and the FAIL_HEALTH / CRASH_ON_START markers live here.
APP_DIR = Path(__file__).resolve().parent.parent
MIGRATIONS_DIR = APP_DIR / "migrations"

# Configuration health reports as set / not set, never a value.
REPORTED_CONFIG = (
    "DATABASE_URL",
    "JWT_SECRET",
    "SUPABASE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "GIGACHAT_AUTH_KEY",
)


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def _read_release() -> str:
    try:
        release = (APP_DIR / "RELEASE").read_text(encoding="utf-8").strip()
    except OSError:
        return "dev"
    return release or "dev"


@dataclass(frozen=True)
class Settings:
    """Everything the backend reads from its environment."""

    database_url: str | None
    jwt_secret: str
    # A generated secret means tokens die with the process: fine for a sandbox
    # without secrets, and health says JWT_SECRET is not set.
    jwt_secret_generated: bool
    access_ttl_s: int
    refresh_ttl_s: int
    pool_min: int
    pool_max: int
    # Off behind a transaction-mode pooler (Supabase's port 6543, pgbouncer),
    # where a prepared statement may land on another server connection.
    prepared_statements: bool
    # How long a request waits for a pooled connection before its 503.
    pool_timeout_s: float
    max_body: int
    # "N per S seconds" per client address on each auth endpoint.
    auth_rate_limit: int
    auth_rate_window_s: int
    release: str
    instance: str
    port: int | None

    @property
    def database_configured(self) -> bool:
        """Whether DATABASE_URL is set (the data endpoints answer 503 otherwise)."""
        return bool(self.database_url)


def load() -> Settings:
    """Settings from ``os.environ``."""
    secret = os.environ.get("JWT_SECRET") or os.environ.get("SUPABASE_JWT_SECRET") or ""
    generated = not secret
    if generated:
        secret = os.urandom(32).hex()
    port_raw = os.environ.get("PORT", "")
    return Settings(
        database_url=os.environ.get("DATABASE_URL") or None,
        jwt_secret=secret,
        jwt_secret_generated=generated,
        access_ttl_s=_int("JWT_ACCESS_TTL_S", 3600),
        refresh_ttl_s=_int("JWT_REFRESH_TTL_S", 30 * 24 * 3600),
        pool_min=_int("DB_POOL_MIN", 1),
        pool_max=_int("DB_POOL_MAX", 10),
        pool_timeout_s=float(_int("DB_POOL_TIMEOUT_S", 5)),
        prepared_statements=os.environ.get("DB_PREPARED_STATEMENTS", "1") != "0",
        max_body=_int("MAX_BODY_BYTES", 1024 * 1024),
        auth_rate_limit=_int("AUTH_RATE_LIMIT", 20),
        auth_rate_window_s=_int("AUTH_RATE_WINDOW_S", 60),
        release=_read_release(),
        instance=os.environ.get("ADAPTO_INSTANCE", ""),
        port=int(port_raw) if port_raw.isdigit() else None,
    )


def failing() -> bool:
    """Whether health must fail now (checked per request: tests flip it on a live instance)."""
    return os.environ.get("ADAPTO_FAIL_HEALTH") == "1" or (APP_DIR / "FAIL_HEALTH").exists()
