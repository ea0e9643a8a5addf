"""Health results for people (a Rich table) and for machines.

- ``health_json``: the application/health+json shape (draft-inadarei-api-health-check):
  {"status", "description", "checks": {"<component>:<measurement>": [one per host]}},
  each entry with componentId (the host), status, observedValue, observedUnit,
  time, output, affectedEndpoints; adapto's own extras are ``kind``, ``next``,
  ``name`` and ``durationMs``.
- ``junit_xml``: one <testsuite> per host, one <testcase> per check, classname
  ``adapto.health.<env>.<host>`` and name ``<component>:<measurement>`` (unique
  together). A failure is a <failure> whose text holds output, kind and next
  command. A warning is a <failure> only with --strict; otherwise the test case
  passes and the warning is in its <system-out>, so CI shows it without failing.
- ``github_annotations`` / ``step_summary``: on GitHub Actions, ``::error`` and
  ``::warning`` lines and a markdown table for $GITHUB_STEP_SUMMARY.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any

from adapto_ops.health.model import CheckResult, overall

STATUS_STYLE = {"pass": "[green]pass[/]", "warn": "[yellow]WARN[/]", "fail": "[red]FAIL[/]"}


def value_text(result: CheckResult) -> str:
    """The observed value with its unit, for people."""
    value = result.observed_value
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        value = f"{value:.0f}" if result.observed_unit == "ms" else f"{value:g}"
    unit = result.observed_unit or ""
    return f"{value}%" if unit == "%" else f"{value} {unit}".strip()


def print_table(results: list[CheckResult], env_name: str, wall_s: float | None = None,
                *, what: str = "health") -> None:
    """One table: host, check, status, value, kind, and the detail or the next command.

    ``what`` names the report in its title (`audit` prints its lines with this table too).
    """
    from rich.markup import escape
    from rich.table import Table

    from adapto_ops.output import console

    title = f"{what} of {env_name}: {overall(results)}"
    if wall_s is not None:
        title += f" ({wall_s:.2f} s)"
    table = Table(title=title, title_justify="left")
    for column in ("host", "check", "status", "value", "kind", "detail / next"):
        table.add_column(column, overflow="fold", no_wrap=column in ("host", "status"))
    for r in results:
        detail = escape(r.output)
        if r.next_command:
            detail += f"\n[bold]next:[/] {escape(r.next_command)}"
        table.add_row(r.host, r.name, STATUS_STYLE[r.status], value_text(r), r.kind or "",
                      detail)
    console().print(table)


def health_json(results: list[CheckResult], env_name: str) -> dict[str, Any]:
    """The application/health+json document."""
    checks: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        entry: dict[str, Any] = {
            "componentId": r.host,
            "componentType": "system" if r.component in ("ssh", "disk") else "component",
            "status": r.status,
            "observedValue": r.observed_value,
            "observedUnit": r.observed_unit,
            "time": r.time,
            "output": r.output,
            "name": r.name,
            "durationMs": r.duration_ms,
        }
        if r.endpoint:
            entry["affectedEndpoints"] = [r.endpoint]
        if r.kind:
            entry["kind"] = r.kind
        if r.next_command:
            entry["next"] = r.next_command
        checks[r.key].append(entry)
    status = overall(results)
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "warn", "fail")}
    hosts = sorted({r.host for r in results})
    return {
        "status": status,
        "description": (f"adapto health of {env_name} ({', '.join(hosts)}): "
                        f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail"),
        "checks": dict(checks),
    }


def _details(r: CheckResult) -> str:
    lines = [f"{r.host} {r.key}: {r.status}", f"output: {r.output}"]
    if r.observed_value is not None:
        lines.append(f"observed: {value_text(r)}")
    if r.endpoint:
        lines.append(f"endpoint: {r.endpoint}")
    if r.kind:
        lines.append(f"kind: {r.kind}")
    if r.next_command:
        lines.append(f"next: {r.next_command}")
    return "\n".join(lines)


def junit_xml(results: list[CheckResult], env_name: str, *, strict: bool,
              what: str = "health") -> str:
    """JUnit XML, one testsuite per host (see the module's docstring for warnings).

    ``what`` names the suites and classnames (``adapto.<what>.<env>.<host>``).
    """
    root = ET.Element("testsuites", name=f"adapto {what} {env_name}")
    by_host: dict[str, list[CheckResult]] = defaultdict(list)
    for r in results:
        by_host[r.host].append(r)
    totals = {"tests": 0, "failures": 0}
    for host, checks in by_host.items():
        suite = ET.SubElement(root, "testsuite", name=f"{env_name}/{host}")
        failures = 0
        for r in checks:
            case = ET.SubElement(suite, "testcase", classname=f"adapto.{what}.{env_name}.{host}",
                                 name=r.key,
                                 time=f"{(r.duration_ms or 0) / 1000:.3f}")
            failing = r.status == "fail" or (strict and r.status == "warn")
            if failing:
                failures += 1
                failure = ET.SubElement(case, "failure", message=f"{r.name}: {r.output}",
                                        type=r.kind or r.status)
                failure.text = _details(r)
            elif r.status == "warn":
                ET.SubElement(case, "system-out").text = "WARNING\n" + _details(r)
        suite.set("tests", str(len(checks)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", "0")
        totals["tests"] += len(checks)
        totals["failures"] += failures
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(results: list[CheckResult], *, strict: bool) -> list[str]:
    """``::error`` for failures (and warnings with --strict), ``::warning`` for warnings."""
    lines = []
    for r in results:
        if r.status == "pass":
            continue
        level = "error" if r.status == "fail" or strict else "warning"
        title = _escape_property(f"adapto health: {r.host} {r.name} ({r.kind or r.status})")
        message = r.output + (f" - next: {r.next_command}" if r.next_command else "")
        lines.append(f"::{level} title={title}::{_escape_data(message)}")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def step_summary(results: list[CheckResult], env_name: str) -> str:
    """A markdown table for the GitHub Actions job summary."""
    icon = {"pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail"}
    rows = [f"### adapto health of {env_name}: {icon[overall(results)]}", "",
            "| host | check | status | value | kind | detail | next |",
            "|---|---|---|---|---|---|---|"]
    rows += [f"| {_cell(r.host)} | {_cell(r.name)} | {icon[r.status]} | "
             f"{_cell(value_text(r))} | {r.kind or ''} | {_cell(r.output)} | "
             f"{_cell(r.next_command or '')} |" for r in results]
    return "\n".join(rows) + "\n\n"
