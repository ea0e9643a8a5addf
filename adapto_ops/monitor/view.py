"""What the monitor shows: a live Rich table, a JSON line per round, or log lines."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from adapto_ops.monitor.loop import RoundOutcome
from adapto_ops.monitor.state import check_id
from adapto_ops.monitor.stats import Stats

STATUS_STYLE = {"pass": "[green]pass[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def table(env: str, stats: Stats, outcome: RoundOutcome, interval_s: float,
          open_incidents: int, recent: list[str]) -> Any:
    """Uptime % and p50/p95 latency per check over the run, with the last round's status."""
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    title = (f"monitor {env}: round {outcome.number}, every {interval_s:g}s, "
             f"{open_incidents} incident(s) open")
    grid = Table(title=title, title_justify="left")
    for column in ("host", "check", "now", "uptime", "p50", "p95", "rounds", "detail"):
        grid.add_column(column, no_wrap=column != "detail")
    for row in stats.rows():
        uptime = row.uptime
        grid.add_row(row.host, row.name, STATUS_STYLE.get(row.last_status, row.last_status),
                     "-" if uptime is None else f"{100 * uptime:.2f} %",
                     _ms(row.p(50)), _ms(row.p(95)), str(row.rounds),
                     escape(row.last_output if row.last_status != "pass" else ""))
    lines = [escape(line) for line in recent[-5:]]
    return Group(grid, *lines) if lines else grid


def json_line(outcome: RoundOutcome, stats: Stats) -> str:
    """One round for CI or a log: every check with its uptime and p50/p95 so far."""
    checks = []
    for r in outcome.results:
        row = stats.checks.get(check_id(r))
        checks.append({
            "host": r.host, "check": r.key, "name": r.name, "status": r.status,
            "observedValue": r.observed_value, "observedUnit": r.observed_unit,
            "output": r.output or None, "kind": r.kind, "next": r.next_command,
            "uptime": None if row is None or row.uptime is None else round(row.uptime, 5),
            "p50_ms": None if row is None else row.p(50),
            "p95_ms": None if row is None else row.p(95),
        })
    return json.dumps({
        "round": outcome.number,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(outcome.started)),
        "status": "pass" if outcome.ok else "fail", "took_ms": round(outcome.took_ms, 1),
        "checks": checks, "events": outcome.events,
    }, default=str)


def event_lines(outcome: RoundOutcome) -> list[str]:
    """One line per thing that happened in the round (alerts, recoveries, delivery failures)."""
    stamp = time.strftime("%H:%M:%S", time.gmtime(outcome.started))
    lines = []
    for event in outcome.events:
        kind = event["event"]
        if kind in {"alert", "resolved"}:
            text = " | ".join(str(event["text"]).splitlines())
            lines.append(f"{stamp} {kind}: {text}")
        elif kind == "recover":
            verdict = "healthy" if event["healthy"] else "still failing"
            why = f" - {event['error']}" if "error" in event else ""
            lines.append(f"{stamp} auto-recover {event['what']} on {event['host']}: {verdict} "
                         f"({event['took_s']} s){why}")
        else:
            lines.append(f"{stamp} alert not delivered ({event['pending']} pending): "
                         f"{event['error']}")
    return lines


def log_line(text: str) -> None:
    """A line for a log file (the unattended monitor under systemd or PM2)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
