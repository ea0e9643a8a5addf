"""Checks on the host itself, from one SSH round trip (facts + instance probes).

As the runbook's `curl localhost:3001`: every backend instance on its own
port, then PM2's view of them (online is not healthy: a rising restart count
is a crash loop), nginx running and `nginx -t`, and free disk under the root.
The database twice: as the backend sees it (the ``database`` object of an
instance's /api/health) and reached directly from the host with the
backend's DATABASE_URL (:mod:`adapto_ops.commands.dbscript`), each failure
of kind "database".

A database that is not configured (no DATABASE_URL) passes with "not
configured": a backend without a database is a valid set-up (the backend
itself answers health 200 then), and a warning would fail every
``health --strict`` of such an environment for nothing.
"""

from __future__ import annotations

import json
from typing import Any

from adapto_ops.commands.probe import ProbeResult, http_probe, parse_probe
from adapto_ops.dbdiag import connection_finding, parse_diagnosis
from adapto_ops.facts import HostFacts
from adapto_ops.health.classify import (
    NextCommands,
    error_kind,
    http_kind,
    probe_body,
    trim,
)
from adapto_ops.health.classify import http_output as http_line
from adapto_ops.health.model import CheckResult, Observed, Status
from adapto_ops.render.configs import Target, instance_name

NOT_CONFIGURED = "not configured"


def instance_urls(target: Target) -> list[tuple[str, str]]:
    """/api/health of every backend instance, as the host reaches them."""
    backend = target.env.backend
    bind = backend.bind
    host = f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind
    return [(f"http://{host}:{port}{backend.health_path}", "") for port in backend.ports]


def instance_probe(target: Target) -> str:
    """One try per instance (health reports, it does not wait), token from stdin."""
    return http_probe(instance_urls(target), 0, with_token=True)


class HostChecks:
    """Builds the on-host results of one host from its facts."""

    def __init__(self, target: Target, facts: HostFacts, next_commands: NextCommands,
                 duration_ms: float) -> None:
        self.target, self.facts, self.next = target, facts, next_commands
        self.env = target.env
        self.ms = duration_ms

    def result(self, component: str, measurement: str, name: str, status: Status, *,
               value: Observed = None, unit: str | None = None, output: str = "",
               kind: str | None = None, endpoint: str | None = None) -> CheckResult:
        """A result of this host; failures and warnings get their next command."""
        next_command = self.next.for_kind(kind, component) if status != "pass" and kind else None
        return CheckResult(self.target.host.name, component, measurement, name, status,
                           value, unit, output, kind if status != "pass" else None, next_command,
                           self.ms, endpoint=endpoint)

    def all(self) -> list[CheckResult]:
        """Every on-host check, instances first."""
        return [*self.instances(), self.pm2(), self.nginx_running(), self.nginx_config(),
                self.disk(), self.database_api(), self.database_connect()]

    def instances(self) -> list[CheckResult]:
        """Each backend instance on its own port, against the API budget."""
        urls = instance_urls(self.target)
        probes = parse_probe(self.facts.probe_output, urls)
        budget = self.env.health.api_budget_ms
        return [self._instance(port, probe, budget)
                for port, probe in zip(self.env.backend.ports, probes, strict=False)]

    def _instance(self, port: int, probe: ProbeResult, budget: int) -> CheckResult:
        component, name = f"instance-{port}", f"instance :{port}"

        def result(status: Status, output: str, kind: str | None) -> CheckResult:
            return self.result(component, "responseTime", name, status, value=probe.ms,
                               unit="ms", output=output, kind=kind, endpoint=probe.url)

        if probe.ok and probe.ms is not None and probe.ms > budget:
            return result("warn", f"{probe.ms:.0f} ms > budget {budget} ms", "slow")
        if probe.ok:
            return result("pass", "HTTP 200", None)
        if probe.status:
            body = probe_body(probe.error or "")
            return result("fail", http_line(probe.status, body), http_kind(probe.status, body))
        error = probe.error or "no answer"
        kind = "process" if error in ("ECONNREFUSED", "ECONNRESET") else error_kind(error)
        words = {"ECONNREFUSED": "connection refused: nothing listens on the port",
                 "ECONNRESET": "connection reset"}
        return result("fail", trim(words.get(error, error)), kind)

    def pm2(self) -> CheckResult:
        """PM2's view: daemon up, every instance present, online and not crash-looping."""
        facts, backend = self.facts, self.env.backend
        name = "pm2"
        if not facts.pm2_daemon:
            return self.result("pm2", "status", name, "fail", value="daemon down",
                               output="the PM2 daemon is not running", kind="process")
        if facts.pm2 is None:
            return self.result("pm2", "status", name, "fail", value="unreadable",
                               output=trim(facts.pm2_error or "pm2 jlist gave no list"),
                               kind="process")
        problems: list[str] = []
        online = 0
        for port in backend.ports:
            app = instance_name(backend.name, port)
            process = facts.instance(backend.name, port)
            if process is None:
                problems.append(f"{app} missing")
            elif process.crash_looping:
                problems.append(f"{app} crash loop ({process.status}, "
                                f"{process.restarts} restarts)")
            elif not process.online:
                problems.append(f"{app} {process.status}")
            else:
                online += 1
        value = f"{online}/{len(backend.ports)} online"
        if problems:
            return self.result("pm2", "status", name, "fail", value=value,
                               output=trim("; ".join(problems)), kind="process")
        restarts = sum(p.restarts for p in facts.processes_of(backend.name))
        return self.result("pm2", "status", name, "pass", value=value,
                           output=f"{restarts} restart(s) in all")

    def nginx_running(self) -> CheckResult:
        """nginx's master process is alive."""
        if self.facts.nginx_running:
            return self.result("nginx", "running", "nginx", "pass", value=True,
                               output=f"master pid {self.facts.nginx_pid}")
        return self.result("nginx", "running", "nginx", "fail", value=False,
                           output="nginx is not running", kind="process")

    def nginx_config(self) -> CheckResult:
        """`nginx -t` passes; otherwise its [emerg] line."""
        ok = self.facts.nginx_config_ok
        if ok:
            return self.result("nginx", "config", "nginx -t", "pass", value=True,
                               output="syntax ok")
        why = self.facts.nginx_config_error or "nginx -t gave no answer"
        emerg = next((part for part in why.split("nginx: ") if "[emerg]" in part), why)
        return self.result("nginx", "config", "nginx -t", "fail", value=False,
                           output=trim(emerg), kind="config")

    def database_api(self) -> CheckResult:
        """The backend's own view: /api/health's database status, latency, migrations."""
        probes = parse_probe(self.facts.probe_output, instance_urls(self.target))
        seen = backend_database(probes)

        def result(status: Status, output: str, value: Observed = None) -> CheckResult:
            return self.result("database", "backendView", "database (backend)", status,
                               value=value, unit="ms", output=trim(output), kind="database")

        if seen is None:
            return result("warn", "not checked: no instance's /api/health answered")
        if not seen:
            return result("pass", "the backend's health reports no database")
        status = str(seen.get("status"))
        if status == NOT_CONFIGURED:
            return result("pass", NOT_CONFIGURED)
        if status != "ok":
            return result("fail", f"{status}: {seen.get('error') or 'no reason given'}")
        latency = seen.get("latency_ms")
        pending = (seen.get("migrations") or {}).get("pending")
        if isinstance(pending, int) and pending > 0:
            return result("warn", f"ok, {pending} migration(s) pending", latency)
        return result("pass", "ok" + (", no migration pending" if pending == 0 else ""),
                      latency)

    def database_connect(self) -> CheckResult:
        """A direct connection from the host with the backend's DATABASE_URL."""
        diagnosis = parse_diagnosis(self.facts.database_output)
        finding = connection_finding(diagnosis)
        output = NOT_CONFIGURED if diagnosis.configured is False else finding.line
        # "warn": no python with psycopg on the host (a node backend): not checked.
        status: Status = {"ok": "pass", "warn": "warn", "fail": "fail"}[finding.level]
        return self.result("database", "connect", "database (from host)", status,
                           value=diagnosis.latency_ms, unit="ms", output=trim(output),
                           kind="database")

    def disk(self) -> CheckResult:
        """Free space under the root, against the inventory's thresholds."""
        disk, health = self.facts.disk, self.env.health
        if disk is None:
            return self.result("disk", "free", "disk", "fail", unit="%",
                               output="df gave no answer", kind="disk")
        free = round(disk.free_percent, 1)
        output = (f"{disk.free_bytes / 1e9:.1f} GB free of {disk.total_bytes / 1e9:.1f} GB "
                  f"on {disk.mount}")
        status: Status = ("fail" if free < health.disk_fail_percent
                          else "warn" if free < health.disk_warn_percent else "pass")
        return self.result("disk", "free", "disk", status, value=free, unit="%",
                           output=output, kind="disk")


def backend_database(probes: list[ProbeResult]) -> dict[str, Any] | None:
    """The first instance answer's database and migrations objects (200 or 503 bodies).

    ``{}`` when an instance answered 200 without one (a backend whose health
    does not report a database), None when no instance gave a readable answer.
    """
    answered = False
    for probe in probes:
        text = probe.body if probe.ok else probe_body(probe.error or "")
        answered = answered or probe.ok
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError):
            continue
        if isinstance(data, dict) and isinstance(data.get("database"), dict):
            return {**data["database"], "migrations": data.get("migrations")}
    return {} if answered else None


def ssh_failure(target: Target, message: str, next_commands: NextCommands,
                ms: float) -> CheckResult:
    """An unreachable host: one failed check, one line."""
    line = trim(message.removeprefix(f"{target.host.name}: "), 160)
    return CheckResult(target.host.name, "ssh", "connect", "ssh", "fail", None, "ms", line,
                       "network", next_commands.for_kind("network", "ssh"), ms)

