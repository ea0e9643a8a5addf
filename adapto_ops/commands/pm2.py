"""PM2 commands for one backend instance at a time, and for PM2's boot persistence."""

from __future__ import annotations

import shlex

# Printed by `ensure_startup` when `pm2 startup` could not install the boot unit.
STARTUP_FAILED = "ADAPTO_PM2_STARTUP_FAILED"


def delete(name: str) -> str:
    """Stop (SIGINT, then SIGKILL after kill_timeout) and forget one app; fine if absent."""
    return f"pm2 delete {shlex.quote(name)} >/dev/null 2>&1 || true"


def start(ecosystem: str, name: str) -> str:
    """Start one app of an ecosystem file afresh, so it runs from the file's cwd."""
    return f"pm2 start {shlex.quote(ecosystem)} --only {shlex.quote(name)} >/dev/null"


def save() -> str:
    """Remember the process list so `pm2 resurrect` (boot) brings the same release back."""
    return "pm2 save --force >/dev/null"


def resurrect() -> str:
    """Start the processes of the saved list (dump.pm2), as PM2's boot unit does."""
    return "pm2 resurrect >/dev/null"


def startup_unit(user: str) -> str:
    """The systemd unit `pm2 startup systemd -u USER` installs."""
    return f"pm2-{user}"


def ensure_startup(user: str) -> str:
    """Install and enable PM2's systemd boot unit for ``user``, only if not enabled yet.

    With it, a reboot starts the PM2 daemon, which resurrects the list `pm2 save`
    wrote. The unit state is checked on the host in the same command (the same
    `systemctl is-enabled` the facts read), so an enabled unit costs nothing.
    Hosts without systemd are left alone. A deploy user other than root needs
    sudo for it (non-interactive: it fails rather than waits for a password);
    a failure prints :data:`STARTUP_FAILED` and never fails the command, since
    the deploy itself succeeded.
    """
    unit = shlex.quote(startup_unit(user))
    install = f'pm2 startup systemd -u {shlex.quote(user)} --hp "$HOME"'
    if user != "root":
        install = f'sudo -n env PATH="$PATH" {install}'
    return (f"if command -v systemctl >/dev/null 2>&1 && "
            f"! systemctl is-enabled {unit} >/dev/null 2>&1; then "
            f"{install} >/dev/null 2>&1 || echo {STARTUP_FAILED}; fi")


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
