"""PM2 commands for one backend instance at a time."""

from __future__ import annotations

import shlex


def delete(name: str) -> str:
    """Stop (SIGINT, then SIGKILL after kill_timeout) and forget one app; fine if absent."""
    return f"pm2 delete {shlex.quote(name)} >/dev/null 2>&1 || true"


def start(ecosystem: str, name: str) -> str:
    """Start one app of an ecosystem file afresh, so it runs from the file's cwd."""
    return f"pm2 start {shlex.quote(ecosystem)} --only {shlex.quote(name)} >/dev/null"


def save() -> str:
    """Remember the process list so `pm2 resurrect` (boot) brings the same release back."""
    return "pm2 save --force >/dev/null"


def jlist() -> str:
    return "pm2 jlist"
