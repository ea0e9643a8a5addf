"""`adapto audit -e ENV`: the runbook's success criteria, one report, every line with evidence.

It composes what exists, concurrently:

- health (:func:`adapto_ops.health.run.run_checks`), its checks and budgets;
- uptime from the monitor's results file (.adapto/monitor/<env>.jsonl);
- per host, one facts read with the optional ``updates`` section (the
  certificate file, ufw for :func:`adapto_ops.firewall.plan.plan_firewall`,
  pending security updates);
- `secrets check`'s report (:func:`adapto_ops.procedures.secrets.collect_secrets_report`:
  names only, here and in each backend host's shared .env);
- `db check` on the first backend host (:mod:`adapto_ops.procedures.dbcheck`).

:mod:`adapto_ops.audit.lines` turns those into pass/warn/fail lines; health's
reporters print them (table, application/health+json, JUnit). Exit 1 on any fail.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapto_ops.errors import AdaptoError
from adapto_ops.health.model import CheckResult, exit_code
from adapto_ops.render.configs import Target
from adapto_ops.selection import Selection, select


@dataclass
class HostRead:
    """What one host's SSH session read for the audit (or why it could not)."""

    facts: Any | None = None  # facts.HostFacts, with updates
    error: str | None = None


@dataclass
class AuditInputs:
    """Everything the lines are judged from."""

    health: list[CheckResult] = field(default_factory=list)
    hosts: dict[str, HostRead] = field(default_factory=dict)
    rounds: list[dict[str, Any]] | None = None
    rounds_source: str = ""
    db: Any | None = None  # dbaudit.DbCheck
    db_host: str = ""
    db_error: str | None = None
    secrets: Any | None = None  # procedures.secrets.SecretsReport
    secrets_error: str | None = None


def _read_host(selection: Selection, target: Target) -> HostRead:
    from adapto_ops.deploy.session import open_transport
    from adapto_ops.facts import gather

    try:
        transport = open_transport(selection, target)
    except AdaptoError as exc:
        return HostRead(error=exc.message)
    try:
        return HostRead(gather(transport, target, with_updates=True))
    except AdaptoError as exc:
        return HostRead(error=exc.message)
    finally:
        transport.close()


def _rounds(selection: Selection) -> tuple[list[dict[str, Any]] | None, str]:
    from adapto_ops.monitor.store import read_rounds
    from adapto_ops.procedures.monitor import results_path

    path = results_path(selection)
    rounds: list[dict[str, Any]] = []
    # The rotated file first: it holds the older rounds of the window.
    for candidate in (path.with_name(path.name + ".1"), path):
        try:
            rounds += read_rounds(candidate)
        except OSError:
            continue
    return (rounds or None), str(path)


def gather_inputs(selection: Selection) -> AuditInputs:
    """Health, the hosts' reads and the database check, all at once."""
    from adapto_ops.health.run import run_checks
    from adapto_ops.procedures.dbcheck import check_environment
    from adapto_ops.procedures.secrets import collect_secrets_report

    inputs = AuditInputs()
    inputs.rounds, inputs.rounds_source = _rounds(selection)
    targets = selection.targets
    with ThreadPoolExecutor(max_workers=3 + len(targets)) as pool:
        health = pool.submit(run_checks, selection)
        reads = {t.host.name: pool.submit(_read_host, selection, t) for t in targets}
        db = pool.submit(check_environment, selection)
        secrets = pool.submit(collect_secrets_report, selection)
        inputs.health = health.result()
        inputs.hosts = {name: future.result() for name, future in reads.items()}
        try:
            inputs.db_host, inputs.db = db.result()
        except AdaptoError as exc:
            inputs.db_error = exc.message
        try:
            inputs.secrets = secrets.result()
        except AdaptoError as exc:
            inputs.secrets_error = exc.message
    return inputs


def audit_lines(selection: Selection, inputs: AuditInputs) -> list[CheckResult]:
    """The report's lines, in the runbook's order of criteria."""
    from adapto_ops.audit import lines as L
    from adapto_ops.firewall.plan import plan_firewall

    env, name = selection.env, selection.env_name
    out = L.health_lines(inputs.health, name, env.health.api_budget_ms,
                         env.health.page_budget_ms)
    out.append(L.uptime_line(name, inputs.rounds, inputs.rounds_source))
    served = {r.host: r for r in inputs.health if r.key == L.CERTIFICATE_KEY}
    for target in selection.targets:
        host = target.host.name
        read = inputs.hosts[host]
        facts = read.facts
        if "web" in target.host.roles:
            cert = facts.certificate if facts is not None else None
            out.append(L.certificate_line(
                host, name, served.get(host), cert.not_after if cert else None,
                (cert.error if cert else None) or read.error))
        plan = None
        if facts is not None and env.firewall.manage:
            plan = plan_firewall(env, target.host, facts.firewall, facts.ssh_port)
        out.append(L.firewall_line(host, name, env.firewall.manage, plan, read.error))
    out += L.secrets_report_lines(name, inputs.secrets, inputs.secrets_error)
    out.append(L.rls_line(inputs.db_host or L.ENVIRONMENT, name, inputs.db, inputs.db_error))
    for target in selection.targets:
        read = inputs.hosts[target.host.name]
        out.append(L.updates_line(target.host.name,
                                  read.facts.updates if read.facts is not None else None))
    return out


def run_audit(*, inventory: str | None, env_name: str, as_json: bool,
              junit: Path | None = None) -> int:
    """The CLI's body: gather, judge, report; 1 on any failing line."""
    from adapto_ops.health import report

    selection = select(inventory, env_name)
    started = time.perf_counter()
    inputs = gather_inputs(selection)
    results = audit_lines(selection, inputs)
    wall_s = time.perf_counter() - started
    if junit is not None:
        try:
            junit.parent.mkdir(parents=True, exist_ok=True)
            junit.write_text(report.junit_xml(results, env_name, strict=False, what="audit"),
                             encoding="utf-8")
        except OSError as exc:
            raise AdaptoError(f"--junit {junit}: cannot write: {exc.strerror}") from None
    if as_json:
        document = report.health_json(results, env_name)
        document["description"] = document["description"].replace("adapto health",
                                                                   "adapto audit", 1)
        document["lines"] = [r.as_dict() for r in results]
        document["seconds"] = round(wall_s, 2)
        print(json.dumps(document))
    else:
        report.print_table(results, env_name, wall_s, what="audit")
    return exit_code(results, strict=False)
