"""The on-host database script's JSON, as typed values and one-line findings (pure).

:mod:`adapto_ops.commands.dbscript` prints one JSON line on the host; this
module turns it into a :class:`Diagnosis` and says, in the runbook's order,
what is wrong: the connection (DNS, TCP, TLS, authentication, the database),
connections used against ``max_connections``, sessions idle in a transaction
or blocking others, pending migrations, and the database's size. Parsing is
tolerant: garbage becomes a diagnosis with an ``error``, never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Level = Literal["ok", "warn", "fail"]

# Connections used of those a non-superuser may open (max_connections - reserved).
CONNECTIONS_WARN_PERCENT = 80.0
CONNECTIONS_FAIL_PERCENT = 95.0

STEP_TITLES = {"dns": "DNS", "tcp": "TCP", "socket": "socket", "tls": "TLS",
               "auth": "authentication", "database": "database", "connections": "connections",
               "server": "server", "connect": "connect"}


@dataclass(frozen=True)
class DbStep:
    """One step of reaching the database: dns, tcp, tls, auth, ... and what it found."""

    name: str
    ok: bool
    detail: str
    ms: float | None = None

    @property
    def line(self) -> str:
        """``TCP: 127.0.0.1:5432: connection refused (is PostgreSQL running?)``."""
        return f"{STEP_TITLES.get(self.name, self.name)}: {self.detail}"


@dataclass(frozen=True)
class DbSession:
    """A session idle in a transaction too long, or blocking others (never its parameters)."""

    pid: int
    user: str
    state: str
    age_s: float
    query: str
    backend_start: str
    idle_in_transaction: bool
    blocking: tuple[int, ...] = ()

    @property
    def line(self) -> str:
        """``pid 4242 ai_app idle in transaction 312 s: select …``."""
        why = f", blocking {', '.join(map(str, self.blocking))}" if self.blocking else ""
        query = f": {self.query}" if self.query else ""
        return f"pid {self.pid} {self.user} {self.state} {self.age_s:.0f} s{why}{query}"

    def handle(self) -> dict[str, Any]:
        """What the script needs to end exactly this session (a pid may be reused)."""
        return {"pid": self.pid, "backend_start": self.backend_start}


@dataclass(frozen=True)
class Connections:
    max: int
    reserved: int
    used: int

    @property
    def usable(self) -> int:
        """What the application's (non-superuser) role may open."""
        return max(1, self.max - self.reserved)

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.usable


@dataclass(frozen=True)
class Diagnosis:
    """Everything the script found (see the module's docstring)."""

    mode: str = "check"
    configured: bool | None = None  # None: not known (the script did not get that far)
    error: str | None = None  # the script could not run or read its input
    unchecked: bool = False  # no python with psycopg on the host: not checked, not failed
    steps: tuple[DbStep, ...] = ()
    dsn: str = ""  # password masked on the host
    target: dict[str, Any] = field(default_factory=dict)
    latency_ms: float | None = None
    server_version: str = ""
    connections: Connections | None = None
    sessions: tuple[DbSession, ...] = ()
    size_bytes: int | None = None
    size_pretty: str = ""
    migrations_pending: int | None = None
    backend_database: dict[str, Any] | None = None
    health_error: str | None = None
    terminated: tuple[dict[str, Any], ...] = ()

    @property
    def connected(self) -> bool:
        return self.latency_ms is not None and all(s.ok for s in self.steps)

    @property
    def failed_step(self) -> DbStep | None:
        return next((s for s in self.steps if not s.ok), None)

    @property
    def where(self) -> str:
        """``ai_app@127.0.0.1:5432/aiplatform`` (no password)."""
        t = self.target
        if not t:
            return ""
        return f"{t.get('user')}@{t.get('host')}:{t.get('port')}/{t.get('dbname')}"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_diagnosis(stdout: str) -> Diagnosis:
    """The script's last JSON line as a :class:`Diagnosis`; garbage gives ``error``."""
    data: Any = None
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                data = None
            break
    if not isinstance(data, dict):
        tail = " ".join(stdout.split())[-200:]
        return Diagnosis(error=f"the database check gave no answer{': ' + tail if tail else ''}")
    steps = tuple(DbStep(str(s.get("name", "?")), bool(s.get("ok")), str(s.get("detail", "")),
                         s.get("ms")) for s in data.get("steps") or [] if isinstance(s, dict))
    conns = data.get("connections")
    connections = None
    if isinstance(conns, dict) and all(_int(conns.get(k)) is not None
                                       for k in ("max", "reserved", "used")):
        connections = Connections(conns["max"], conns["reserved"], conns["used"])
    sessions = tuple(
        DbSession(int(s["pid"]), str(s.get("user", "?")), str(s.get("state", "?")),
                  float(s.get("age_s") or 0), str(s.get("query", "")),
                  str(s.get("backend_start", "")), bool(s.get("idle_in_transaction")),
                  tuple(int(p) for p in s.get("blocking") or []))
        for s in data.get("sessions") or [] if isinstance(s, dict) and _int(s.get("pid")))
    size = data.get("size") if isinstance(data.get("size"), dict) else {}
    migrations = data.get("migrations") if isinstance(data.get("migrations"), dict) else {}
    error = data.get("error") or (data.get("env_error") and f"cannot read {data['env_error']}")
    return Diagnosis(
        mode=str(data.get("mode", "check")),
        configured=data.get("configured") if isinstance(data.get("configured"), bool) else None,
        error=str(error) if error else None, unchecked=data.get("unchecked") is True,
        steps=steps, dsn=str(data.get("dsn", "")),
        target=data.get("target") if isinstance(data.get("target"), dict) else {},
        latency_ms=data.get("latency_ms"), server_version=str(data.get("server_version", "")),
        connections=connections, sessions=sessions,
        size_bytes=_int(size.get("bytes")), size_pretty=str(size.get("pretty", "")),
        migrations_pending=_int(migrations.get("pending")),
        backend_database=data.get("backend_database"),
        health_error=data.get("health_error"),
        terminated=tuple(t for t in data.get("terminated") or [] if isinstance(t, dict)))


# --- findings, in the runbook's order ---------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One line of the diagnosis: what was checked, how it stands, in a few words."""

    check: str  # connection | connections | sessions | migrations | size
    level: Level
    line: str


def connection_finding(d: Diagnosis) -> Finding:
    """Reaching the database: the first step that failed, named; or where and how fast."""
    if d.error:
        return Finding("connection", "warn" if d.unchecked else "fail", d.error)
    if d.configured is False:
        return Finding("connection", "ok", "not configured (no DATABASE_URL in the shared .env)")
    failed = d.failed_step
    if failed is not None:
        level: Level = "fail"
        return Finding("connection", level, f"{failed.line} ({d.where})" if d.where
                       else failed.line)
    if d.latency_ms is None:
        return Finding("connection", "fail", "the check stopped before connecting")
    tls = next((s.detail for s in d.steps if s.name == "tls"), "")
    return Finding("connection", "ok", f"{d.where} in {d.latency_ms:.0f} ms"
                   + (f", TLS {tls}" if tls else ""))


def connections_finding(d: Diagnosis) -> Finding | None:
    """Connections used against max_connections; None when not read."""
    # When the limit kept the check itself out, the connection finding names it.
    c = d.connections
    if c is None:
        return None
    text = (f"{c.used} of {c.usable} usable ({c.percent:.0f} %; max_connections {c.max}, "
            f"{c.reserved} reserved)")
    if c.percent >= CONNECTIONS_FAIL_PERCENT:
        return Finding("connections", "fail", f"too many clients: {text}")
    if c.percent >= CONNECTIONS_WARN_PERCENT:
        return Finding("connections", "warn", f"nearly exhausted: {text}")
    return Finding("connections", "ok", text)


def sessions_finding(d: Diagnosis, idle_s: float) -> Finding | None:
    """Sessions idle in a transaction longer than ``idle_s`` or blocking others."""
    if d.connections is None:  # not connected: not read
        return None
    if not d.sessions:
        return Finding("sessions", "ok", f"none idle in a transaction over {idle_s:.0f} s, "
                       "none blocking others")
    idle = sum(s.idle_in_transaction for s in d.sessions)
    blocking = sum(bool(s.blocking) for s in d.sessions)
    return Finding("sessions", "fail", f"{idle} idle in a transaction over {idle_s:.0f} s, "
                   f"{blocking} blocking others")


def migrations_finding(d: Diagnosis, pending: int | None = None) -> Finding | None:
    """Pending migrations (``pending`` from the migrate status command overrides health's)."""
    count = pending if pending is not None else d.migrations_pending
    if count is None:
        if d.health_error:
            return Finding("migrations", "warn",
                           f"unknown: the backend's /api/health did not answer ({d.health_error})")
        return None
    if count:
        return Finding("migrations", "warn", f"{count} pending")
    return Finding("migrations", "ok", "none pending")


def size_finding(d: Diagnosis) -> Finding | None:
    """pg_database_size, reported (never a problem by itself)."""
    if d.size_bytes is None:
        return None
    return Finding("size", "ok", f"{d.size_pretty} ({d.size_bytes} bytes)")


def findings(d: Diagnosis, idle_s: float, pending: int | None = None) -> list[Finding]:
    """Every finding, in the runbook's order."""
    found = [connection_finding(d), connections_finding(d), sessions_finding(d, idle_s),
             migrations_finding(d, pending), size_finding(d)]
    return [f for f in found if f is not None]
