"""`adapto health`: the runbook's checks against its success criteria, on every host at once.

From each host (over SSH, so instances bound to 127.0.0.1 are reachable and
nothing is exposed): /api/health and / through nginx over TLS, /api/health
on every backend instance. A check fails on a non-200 answer or when it is
slower than the inventory's budget (API 200 ms, page 2 s by default).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from adapto_ops.errors import EXIT_FAILED, EXIT_OK
from adapto_ops.output import console
from adapto_ops.selection import select


@dataclass(frozen=True)
class Check:
    host: str
    name: str
    url: str
    ok: bool
    ms: float | None
    budget_ms: int
    detail: str


def _checks_for(deployer: Any) -> list[Check]:
    from adapto_ops.commands.probe import http_probe, parse_probe
    from adapto_ops.deploy.host import health_urls

    env = deployer.env
    urls = health_urls(deployer.target)
    result = deployer.t.run(http_probe(urls, env.health.timeout_s), check=False, mutates=False,
                            what="health checks", timeout=env.health.timeout_s + 30)
    names = ["api via nginx", "page via nginx"] + [
        f"instance :{p}" for p in env.backend.ports
    ]
    budgets = [env.health.api_budget_ms, env.health.page_budget_ms] + [
        env.health.api_budget_ms for _ in env.backend.ports
    ]
    checks = []
    for name, budget, probe in zip(names, budgets, parse_probe(result.stdout, urls), strict=True):
        slow = probe.ok and probe.ms is not None and probe.ms > budget
        detail = probe.error or (f"{probe.ms:.0f} ms > budget {budget} ms" if slow else "")
        if probe.ok and not slow and name.startswith("api"):
            try:
                detail = f"release {json.loads(probe.body).get('release', '?')}"
            except (json.JSONDecodeError, AttributeError):
                detail = ""
        checks.append(Check(deployer.name, name, probe.url, probe.ok and not slow, probe.ms,
                            budget, detail))
    return checks


def run_health(*, inventory: str | None, env_name: str, hosts: list[str] | None,
               as_json: bool) -> int:
    from adapto_ops.deploy.run import Session, parallel
    from adapto_ops.errors import AdaptoError
    from adapto_ops.events import ListReporter

    selection = select(inventory, env_name, hosts)
    with Session(selection, ListReporter(), dry_run=False) as session:
        results = parallel(session.deployers, _checks_for)
    checks: list[Check] = []
    for deployer, result in zip(session.deployers, results, strict=True):
        if isinstance(result, BaseException):
            message = result.message if isinstance(result, AdaptoError) else str(result)
            checks.append(Check(deployer.name, "ssh", "", False, None, 0, message))
        else:
            checks.extend(result)
    ok = all(c.ok for c in checks)
    if as_json:
        print(json.dumps({"ok": ok, "checks": [asdict(c) for c in checks]}, indent=2))
        return EXIT_OK if ok else EXIT_FAILED
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"health of {selection.env_name}")
    for column in ("host", "check", "result", "time", "budget", "detail"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.host, c.name, "[green]ok[/]" if c.ok else "[red]FAIL[/]",
                      f"{c.ms:.0f} ms" if c.ms is not None else "-", f"{c.budget_ms} ms",
                      escape(c.detail))
    console().print(table)
    return EXIT_OK if ok else EXIT_FAILED
