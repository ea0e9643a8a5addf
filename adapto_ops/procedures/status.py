"""`adapto status`: what runs on each host, at a glance, from one facts read per host.

Everything shown comes from :func:`adapto_ops.facts.gather` (one SSH round
trip per host, hosts in parallel): PM2 processes and boot persistence, nginx,
the current release, the certificate, the firewall, disk and the last deploy.
Status reports; it does not judge health (that is `adapto health`): the exit
code is 1 only when a host could not be read at all. Facts never carry a
process environment, and port holders' command lines are masked with the
environment's secret values, so nothing here prints a secret.
"""

from __future__ import annotations

import calendar
import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from adapto_ops.errors import EXIT_FAILED, EXIT_OK, AdaptoError
from adapto_ops.facts import HostFacts
from adapto_ops.inventory.secrets import maskable_values
from adapto_ops.selection import Selection, select

CERT_WARN_DAYS = 14  # as `adapto health`: fewer days left is shown in red
HISTORY_KEYS = ("release", "action", "result", "time", "user", "error")


@dataclass(frozen=True)
class HostStatus:
    """One host's facts, or why they could not be read."""

    host: str
    facts: HostFacts | None
    error: str | None = None


def collect(selection: Selection) -> list[HostStatus]:
    """Connect to every selected host at once and read its facts (one round trip each)."""
    from adapto_ops.deploy.session import open_transport, parallel
    from adapto_ops.facts import gather

    def read(target: Any) -> HostFacts:
        transport = open_transport(selection, target)
        try:
            return gather(transport, target)
        finally:
            transport.close()

    statuses = []
    for target, result in zip(selection.targets, parallel(selection.targets, read), strict=True):
        if isinstance(result, BaseException):
            message = result.message if isinstance(result, AdaptoError) else str(result)
            statuses.append(HostStatus(target.host.name, None,
                                       message or type(result).__name__))
        else:
            statuses.append(HostStatus(target.host.name, result))
    return statuses


def age_seconds(stamp: str | None, now: float | None = None) -> float | None:
    """Seconds since a ``%Y-%m-%dT%H:%M:%SZ`` UTC time (as releases and history write it)."""
    if not stamp:
        return None
    try:
        then = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None
    return max(0.0, (now if now is not None else time.time()) - then)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value)


def masker(secret_values: list[str]) -> Any:
    """A function that replaces every secret value in a text by ``***``."""
    values = [v for v in maskable_values(secret_values) if len(v) >= 4]

    def mask(text: str) -> str:
        for value in values:
            text = text.replace(value, "***")
        return text

    return mask


def host_json(status: HostStatus, backend_name: str, ports: list[int],
              mask: Any = str, *, sandbox: bool = False) -> dict[str, Any]:
    """One host's status as plain JSON data (what `--json` prints, one object per host)."""
    f = status.facts
    if f is None:
        return {"host": status.host, "reachable": False, "error": status.error}
    cert_days = f.certificate.days_left()
    known = {p.name for p in f.pm2 or []}
    return {
        "host": f.host, "reachable": True, "read_s": round(f.read_s, 3),
        "pm2": {
            "daemon": f.pm2_daemon, "error": f.pm2_error,
            "processes": [{
                "name": p.name, "status": p.status, "pid": p.pid, "port": p.port,
                "uptime_s": p.uptime_s, "restarts": p.restarts,
                "unstable_restarts": p.unstable_restarts, "cpu_percent": p.cpu,
                "memory_bytes": p.memory, "crash_loop": p.crash_looping, "cwd": p.cwd,
            } for p in f.pm2 or []],
            "not_in_pm2": [n for n in f.instances_not_online(backend_name, ports)
                           if n not in known],
            "saved": f.pm2_saved, "startup_unit": f.pm2_startup,
            # A sandbox's boot is `adapto sandbox up` (it resurrects the saved list).
            "boot": "sandbox up" if sandbox else "systemd",
        },
        "nginx": {"running": f.nginx_running, "pid": f.nginx_pid,
                  "config_ok": f.nginx_config_ok,
                  "config_error": None if f.nginx_config_ok else f.nginx_config_error or None},
        "release": {"id": f.release, "created": f.release_created,
                    "age_s": _rounded(age_seconds(f.release_created)),
                    "revision": f.release_revision,
                    "backend_release": f.backend_release},
        "certificate": {
            "not_after": f.certificate.not_after.isoformat() if f.certificate.not_after
            else None,
            "days_left": round(cert_days, 1) if cert_days is not None else None,
            "subject": f.certificate.subject, "error": f.certificate.error},
        "firewall": {"ufw": f.ufw, "rules": f.ufw_rules},
        "disk": None if f.disk is None else {
            "mount": f.disk.mount, "free_bytes": f.disk.free_bytes,
            "total_bytes": f.disk.total_bytes, "free_percent": round(f.disk.free_percent, 1)},
        "port_holders": [{"port": port, "pid": h.pid, "command": mask(h.command)}
                         for port in ports if (h := f.foreign_holder(port)) is not None],
        "last_deploy": None if f.last_deploy is None else {
            k: f.last_deploy.get(k) for k in HISTORY_KEYS},
    }


def run_status(*, inventory: str | None, env_name: str, hosts: list[str] | None,
               as_json: bool) -> int:
    """Print one table (or JSON object) per host; exit 1 if any host could not be read."""
    selection = select(inventory, env_name, hosts)
    statuses = collect(selection)
    env = selection.env
    mask = masker(list(selection.secrets().values.values()))
    rows = [host_json(s, env.backend.name, list(env.backend.ports), mask,
                      sandbox=env.sandbox is not None) for s in statuses]
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        from adapto_ops.procedures.status_view import print_status

        print_status(selection.env_name, rows)
    unreachable = [s for s in statuses if s.facts is None]
    for s in unreachable:
        print(f"error: {s.host}: unreachable: {s.error}", file=sys.stderr)
    return EXIT_FAILED if unreachable else EXIT_OK
