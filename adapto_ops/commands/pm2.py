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


def start_only(ecosystem: str, names: list[str]) -> str:
    """Start several apps of an ecosystem file in one `pm2 start` (which launches the daemon)."""
    return start(ecosystem, ",".join(names))


def log_tail(log_dir: str, name: str, lines: int) -> str:
    """The last ``lines`` of an app's newest error and out logs, each under a ``==> file <==``.

    PM2 may add the app's id to the file name (``<name>-error-3.log``), and a
    deleted and restarted app gets a new id, so the newest matching file is it.
    """
    base = shlex.quote(f"{log_dir}/{name}")
    return "; ".join(
        f'f=$(ls -t {base}-{kind}*.log 2>/dev/null | head -n 1); '
        f'if [ -n "$f" ]; then echo "==> $f <=="; tail -n {int(lines)} "$f"; fi'
        for kind in ("error", "out")
    )
