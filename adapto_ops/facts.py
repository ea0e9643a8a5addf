"""Facts: a host's state, read in one SSH round trip and parsed into typed values.

`status`, `health`, `recover` and `monitor` all read hosts through here
(DESIGN §3), as pyinfra's operations share its facts. The command itself is
built by :func:`adapto_ops.commands.facts.gather`; this module runs it and
turns each section into a value. Parsing is pure and tolerant: a section
that is missing or garbled becomes "unknown", never an exception, because a
broken host is exactly when these facts are read.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from adapto_ops.commands import facts as facts_cmd
from adapto_ops.commands import firewall as firewall_cmd
from adapto_ops.firewall.rules import UfwFacts, parse_ssh_port, parse_ufw_facts
from adapto_ops.remote import Transport
from adapto_ops.render.configs import Target, instance_name


@dataclass(frozen=True)
class Pm2Process:
    """One PM2 app, as `pm2 jlist` reports it (environment left out on the host)."""

    name: str
    status: str  # online | stopped | errored | launching | waiting restart | ...
    pid: int | None = None
    namespace: str | None = None
    restarts: int = 0
    unstable_restarts: int = 0
    uptime_s: float | None = None
    cpu: float | None = None
    memory: int | None = None  # bytes
    port: int | None = None
    cwd: str | None = None

    @property
    def online(self) -> bool:
        return self.status == "online"

    @property
    def crash_looping(self) -> bool:
        """Restarting over and over: PM2's back-off state, or online for moments after restarts.

        PM2 calls a process that dies before ``min_uptime`` (10 s in our ecosystem)
        an unstable restart; with exponential back-off it spends most of a crash
        loop in "waiting restart".
        """
        if self.status in {"waiting restart", "errored"} and self.restarts > 0:
            return True
        young = self.uptime_s is not None and self.uptime_s < 10
        return self.online and young and self.unstable_restarts > 0


@dataclass(frozen=True)
class PortHolder:
    """Who listens on a backend port: pid, its ancestors (pid first) and command line."""

    port: int
    pid: int | None
    ancestry: tuple[int, ...] = ()
    command: str = ""


@dataclass(frozen=True)
class Certificate:
    not_after: dt.datetime | None
    subject: str = ""
    error: str | None = None

    def days_left(self, now: dt.datetime | None = None) -> float | None:
        if self.not_after is None:
            return None
        now = now or dt.datetime.now(dt.UTC)
        return (self.not_after - now).total_seconds() / 86400


@dataclass(frozen=True)
class Disk:
    total_bytes: int
    free_bytes: int
    mount: str

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 0.0


@dataclass(frozen=True)
class Updates:
    """Pending OS upgrades as apt lists them (the optional ``updates`` section)."""

    pending: int = 0
    security: tuple[str, ...] = ()  # package names whose new version comes from *-security
    lists_updated: dt.datetime | None = None  # when apt's package lists were last refreshed
    error: str | None = None  # apt missing or failing: nothing else here is known

    def lists_age_days(self, now: dt.datetime | None = None) -> float | None:
        if self.lists_updated is None:
            return None
        return ((now or dt.datetime.now(dt.UTC)) - self.lists_updated).total_seconds() / 86400


def parse_updates(text: str) -> Updates | None:
    """The ``updates`` section (see commands.facts.UPDATES_SH); None when it was not asked for."""
    if not text.strip():
        return None
    if text.strip() == "no-apt":
        return Updates(error="no apt on this host (not Debian/Ubuntu?)")
    lists, error, code, pending, security = None, None, None, 0, []
    for line in text.splitlines():
        if line.startswith("lists=") and line[6:].strip().isdigit():
            lists = dt.datetime.fromtimestamp(int(line[6:].strip()), dt.UTC)
        elif line.startswith("exit="):
            code = line[5:].strip()
        elif line.startswith("error="):
            error = line[6:].strip()[:200] or "apt failed"
        elif "[upgradable from:" in line and "/" in line.split()[0]:
            pending += 1
            # "libgcrypt20/oldstable,oldstable-security 1.10.1-3+deb12u1 amd64 [upgradable …]"
            name, _, suites = line.split()[0].partition("/")
            if any(suite.endswith("-security") for suite in suites.split(",")):
                security.append(name)
    if code not in (None, "0"):
        return Updates(lists_updated=lists, error=f"apt list --upgradable failed: {error or code}")
    return Updates(pending, tuple(security), lists)


@dataclass(frozen=True)
class HostFacts:
    """Everything `status`, `health`, `recover` and `monitor` know about one host."""

    host: str
    pm2_daemon: bool = False
    pm2: list[Pm2Process] | None = None  # None: daemon down or jlist unreadable
    pm2_error: str | None = None
    pm2_saved: bool = False  # dump.pm2 exists: `pm2 resurrect` has a list to bring back
    pm2_startup: str = "unknown"  # systemd unit state: enabled | disabled | missing | no-systemd
    nginx_pid: int | None = None
    nginx_config_ok: bool | None = None
    nginx_config_error: str = ""
    release: str | None = None
    release_created: str | None = None
    release_revision: str | None = None
    backend_release: str | None = None
    certificate: Certificate = field(default_factory=lambda: Certificate(None, error="unread"))
    disk: Disk | None = None
    ufw: str = "unknown"  # not installed | inactive | active | unknown (…)
    ufw_rules: list[str] = field(default_factory=list)
    firewall: UfwFacts = field(default_factory=UfwFacts)  # typed rules and policies
    ssh_port: int | None = None  # the server port this SSH session came in on
    listeners: dict[int, PortHolder] = field(default_factory=dict)
    last_deploy: dict[str, Any] | None = None
    read_s: float = 0.0
    probe_output: str = ""  # what the probe run beside the reads printed (see gather)
    database_output: str = ""  # what the database check run beside them printed
    updates: Updates | None = None  # only when asked for (gather(with_updates=True))

    @property
    def nginx_running(self) -> bool:
        return self.nginx_pid is not None

    def processes_of(self, backend_name: str) -> list[Pm2Process]:
        """The PM2 apps of this backend: our instances and strays in its namespace."""
        return [p for p in self.pm2 or []
                if p.name == backend_name or p.namespace == backend_name
                or p.name.startswith(backend_name + "-")]

    def instance(self, backend_name: str, port: int) -> Pm2Process | None:
        name = instance_name(backend_name, port)
        return next((p for p in self.pm2 or [] if p.name == name), None)

    def instances_not_online(self, backend_name: str, ports: Iterable[int]) -> list[str]:
        """Names of the backend's instances PM2 does not run online (all, if its daemon is down)."""
        names = [instance_name(backend_name, port) for port in ports]
        online = {p.name for p in self.pm2 or [] if p.online}
        return [n for n in names if n not in online]

    def foreign_holder(self, port: int) -> PortHolder | None:
        """The listener on ``port`` when it is not one of PM2's processes (or their children)."""
        holder = self.listeners.get(port)
        if holder is None:
            return None
        pm2_pids = {p.pid for p in self.pm2 or [] if p.pid}
        if pm2_pids & set(holder.ancestry or ((holder.pid,) if holder.pid else ())):
            return None
        return holder


def split_sections(stdout: str) -> dict[str, str]:
    """``@@name`` headed sections of the gather command's output."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        if line.startswith("@@") and line[2:].strip() in (*facts_cmd.SECTIONS, "end"):
            current = sections.setdefault(line[2:].strip(), [])
            continue
        if current is not None:
            current.append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items()}


def parse_pm2(text: str) -> tuple[list[Pm2Process] | None, str | None]:
    """The reduced jlist (see commands.facts.PM2_REDUCE_JS) as processes, or an error."""
    if not text or text == "null":
        return None, None
    try:
        data = json.loads(text.splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return None, "pm2 jlist could not be read"
    if isinstance(data, dict):
        return None, str(data.get("error") or "pm2 jlist could not be read")
    processes = []
    for app in data:
        if not isinstance(app, dict):
            continue
        processes.append(Pm2Process(
            name=str(app.get("name")), status=str(app.get("status") or "unknown"),
            pid=app.get("pid") or None, namespace=app.get("namespace"),
            restarts=int(app.get("restarts") or 0),
            unstable_restarts=int(app.get("unstable_restarts") or 0),
            uptime_s=app.get("uptime_s"), cpu=app.get("cpu"), memory=app.get("memory"),
            port=app.get("port"), cwd=app.get("cwd")))
    return processes, None


def parse_certificate(text: str) -> Certificate:
    not_after, subject = None, ""
    for line in text.splitlines():
        if line.startswith("notAfter="):
            try:
                not_after = dt.datetime.strptime(line[9:].strip(), "%b %d %H:%M:%S %Y %Z") \
                    .replace(tzinfo=dt.UTC)
            except ValueError:
                pass
        elif line.startswith("subject="):
            subject = line[8:].strip()
    if not_after is None:
        reason = (text.strip().splitlines() or ["no certificate"])[-1][:200]
        return Certificate(None, subject, reason)
    return Certificate(not_after, subject)


def parse_disk(text: str) -> Disk | None:
    parts = text.split()
    try:
        total_k, free_k = int(parts[1]), int(parts[3])
    except (IndexError, ValueError):
        return None
    return Disk(total_k * 1024, free_k * 1024, parts[-1])


def parse_ufw(text: str) -> tuple[str, list[str]]:
    if text.strip() == "not-installed":
        return "not installed", []
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Status:"):
            state = line.split(":", 1)[1].strip()
            # `ufw status verbose` adds Logging/Default/New profiles lines above the table.
            rules = [ln for ln in lines if not ln.startswith(
                ("Status:", "To ", "--", "Logging:", "Default:", "New profiles:"))]
            return state, rules
    return f"unknown ({lines[-1][:80] if lines else 'no answer'})", []


def parse_listeners(text: str) -> dict[int, PortHolder]:
    holders: dict[int, PortHolder] = {}
    for line in text.splitlines():
        parts = line.split(" ", 3)
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        pid = int(parts[1]) if parts[1].isdigit() else None
        chain = tuple(int(p) for p in parts[2].split(",") if p.isdigit())
        holders[int(parts[0])] = PortHolder(int(parts[0]), pid, chain,
                                            parts[3].strip() if len(parts) > 3 else "")
    return holders


def parse_facts(host: str, stdout: str, read_s: float = 0.0) -> HostFacts:
    """The gather command's output as :class:`HostFacts` (pure; tolerant of any garbage)."""
    s = split_sections(stdout)
    pm2, pm2_error = parse_pm2(s.get("pm2", ""))
    startup = dict(line.split("=", 1) for line in s.get("pm2_startup", "").splitlines()
                   if "=" in line)
    running = s.get("nginx_running", "")
    test_lines = s.get("nginx_test", "").splitlines()
    test_ok = None
    if test_lines and test_lines[-1].startswith("exit="):
        test_ok = test_lines[-1] == "exit=0"
        test_lines = test_lines[:-1]
    try:
        release = json.loads(s.get("release") or "{}")
    except json.JSONDecodeError:
        release = {}
    try:
        last = json.loads(s.get("history") or "null")
    except json.JSONDecodeError:
        last = None
    ufw, rules = parse_ufw(s.get("ufw", ""))
    return HostFacts(
        host=host,
        pm2_daemon=s.get("pm2_daemon") == "yes",
        pm2=pm2, pm2_error=pm2_error,
        pm2_saved=startup.get("saved") == "yes",
        pm2_startup=startup.get("unit", "unknown"),
        nginx_pid=int(running) if running.isdigit() else None,
        nginx_config_ok=test_ok,
        nginx_config_error=" ".join(line.strip() for line in test_lines if line.strip())[:500],
        release=release.get("id"), release_created=release.get("created"),
        release_revision=release.get("revision"),
        backend_release=release.get("backend_release"),
        certificate=parse_certificate(s.get("certificate", "")),
        disk=parse_disk(s.get("disk", "")),
        ufw=ufw, ufw_rules=rules,
        firewall=parse_ufw_facts(s.get("ufw", ""), s.get("ufw_added", ""),
                                 s.get("ufw_defaults", "")),
        ssh_port=parse_ssh_port(s.get("ssh_port", "")),
        listeners=parse_listeners(s.get("listeners", "")),
        last_deploy=last if isinstance(last, dict) else None,
        read_s=read_s,
        probe_output=s.get("probe", ""),
        database_output=s.get("database", ""),
        updates=parse_updates(s.get("updates", "")),
    )


def gather(transport: Transport, target: Target, *, probe: str | None = None,
           stdin: bytes | None = None, database: str | None = None,
           with_updates: bool = False) -> HostFacts:
    """Read every fact of one host in one round trip.

    ``probe``: a command run on the host at the same time (its output lands in
    ``probe_output``), fed ``stdin``. ``database``: the on-host database check,
    also run at the same time (its output lands in ``database_output``).
    ``with_updates``: also the pending OS upgrades (``updates``; seconds of apt).
    """
    started = time.perf_counter()
    command = facts_cmd.gather(target.env, target.host.user, probe, database, with_updates)
    result = transport.run(command, check=False,
                           stdin=stdin, mutates=False, what="read host facts", timeout=60)
    return parse_facts(target.host.name, result.stdout, time.perf_counter() - started)


def read_firewall(transport: Transport, target: Target) -> tuple[UfwFacts, int | None]:
    """Only ufw's facts and the SSH port (`adapto firewall`: no PM2, nginx or disk reads)."""
    result = transport.run(firewall_cmd.firewall_read(target.host.user), check=False,
                           mutates=False, what="read ufw", timeout=60)
    s = split_sections(result.stdout)
    return (parse_ufw_facts(s.get("ufw", ""), s.get("ufw_added", ""), s.get("ufw_defaults", "")),
            parse_ssh_port(s.get("ssh_port", "")))


@dataclass(frozen=True)
class EnvFileFacts:
    """The shared .env on a host as names only: whether it exists, mode, owner, names set."""

    exists: bool
    mode: int | None = None  # e.g. 0o600
    owner: str = ""
    names: frozenset[str] = frozenset()
    readable: bool = True


def parse_env_file_names(text: str) -> EnvFileFacts:
    """The output of :func:`adapto_ops.commands.facts.env_file_names` (pure, tolerant)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines or lines[0] == "absent":
        return EnvFileFacts(exists=False)
    mode, owner = None, ""
    names: set[str] = set()
    readable = True
    for line in lines:
        if line.startswith("stat="):
            parts = line[5:].split()
            if parts and all(c in "01234567" for c in parts[0]):
                mode = int(parts[0], 8)
            owner = parts[1] if len(parts) > 1 else ""
        elif line.startswith("name="):
            names.add(line[5:])
        elif line == "unreadable":
            readable = False
    return EnvFileFacts(True, mode, owner, frozenset(names), readable)


def read_env_file(transport: Transport, target: Target) -> EnvFileFacts:
    """The host's shared .env: mode, owner and the names it sets; values never leave the host."""
    result = transport.run(facts_cmd.env_file_names(target.layout.env_file), check=False,
                           mutates=False, what="read the names in the shared .env", timeout=60)
    return parse_env_file_names(result.stdout)
