"""The audit's lines: each success criterion of the runbook, judged from what was read (pure).

Every function takes what another part of adapto already produced (health's
results, the monitor's rounds, facts, the firewall plan, the secrets problems,
`db check`'s answer) and returns :class:`CheckResult` lines, so the audit is
printed, written as JSON and as JUnit by health's own reporters. Nothing here
reads a host; :mod:`adapto_ops.procedures.audit` gathers the inputs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from adapto_ops.health.model import CheckResult, Status, overall

UPTIME_TARGET = 99.5  # percent, the runbook's success criterion
UPTIME_WINDOW_DAYS = 30
CERT_WARN_DAYS = 14
APT_LISTS_STALE_DAYS = 7
ENVIRONMENT = "environment"  # the host column of lines about the whole environment
EVIDENCE_CHARS = 400


def _line(host: str, component: str, measurement: str, name: str, status: Status,
          output: str, *, value: Any = None, unit: str | None = None, kind: str | None = None,
          next_command: str | None = None) -> CheckResult:
    text = " ".join(output.split())
    if len(text) > EVIDENCE_CHARS:
        text = text[: EVIDENCE_CHARS - 1] + "…"
    return CheckResult(host, component, measurement, name, status, value, unit, text,
                       kind if status != "pass" else None,
                       next_command if status != "pass" else None)


def _worst(statuses: Iterable[Status]) -> Status:
    found = set(statuses)
    return "fail" if "fail" in found else "warn" if "warn" in found else "pass"


# --- health and its budgets ---------------------------------------------------------------

BUDGETED = {"api:responseTime", "page:responseTime"}
CERTIFICATE_KEY = "certificate:daysLeft"


def health_lines(results: list[CheckResult], env_name: str, api_budget_ms: int,
                 page_budget_ms: int) -> list[CheckResult]:
    """Per host: one line for health's checks, one for the response budgets.

    The served certificate's check is left to :func:`certificate_line`.
    """
    lines: list[CheckResult] = []
    hosts = list(dict.fromkeys(r.host for r in results))
    budgets = {"api:responseTime": api_budget_ms, "page:responseTime": page_budget_ms}
    for host in hosts:
        mine = [r for r in results if r.host == host and r.key != CERTIFICATE_KEY]
        checks = [r for r in mine if r.key not in BUDGETED]
        timed = [r for r in mine if r.key in BUDGETED]
        if checks:
            status = overall(checks)
            bad = [r for r in checks if r.status != "pass"]
            evidence = (f"all {len(checks)} pass" if not bad else
                        f"{len(checks) - len(bad)}/{len(checks)} pass; " + "; ".join(
                            f"{r.name}: {r.status} ({r.output})" for r in bad))
            worst = next((r for r in bad if r.status == "fail"), bad[0] if bad else None)
            lines.append(_line(host, "health", "checks", "health checks", status, evidence,
                               value=len(checks) - len(bad), unit="pass",
                               kind=worst.kind if worst else None,
                               next_command=(worst.next_command if worst and worst.next_command
                                             else f"adapto health -e {env_name}")))
        if timed:
            parts = []
            for r in timed:
                measured = (f"{r.observed_value:.0f} ms" if isinstance(r.observed_value,
                                                                      int | float)
                            else r.output)
                parts.append(f"{r.name} {measured} (budget {budgets[r.key]} ms)")
            lines.append(_line(host, "budgets", "responseTime", "response budgets",
                               overall(timed), ", ".join(parts), kind="slow",
                               next_command=f"adapto health -e {env_name}"))
    return lines


# --- uptime from the monitor's history ---------------------------------------------------------


def _when(record: dict[str, Any]) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(str(record.get("time", "")).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def uptime_line(env_name: str, rounds: list[dict[str, Any]] | None, source: str,
                now: dt.datetime | None = None, *, target: float = UPTIME_TARGET,
                window_days: int = UPTIME_WINDOW_DAYS) -> CheckResult:
    """Share of monitor rounds (last ``window_days``) that did not fail, against ``target``."""
    now = now or dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(days=window_days)
    recent = [r for r in rounds or [] if (when := _when(r)) is not None and when >= since]
    monitor = f"adapto monitor -e {env_name}"
    if not recent:
        why = "no monitor history" if not rounds else \
            f"no monitor history in the last {window_days} days"
        return _line(ENVIRONMENT, "uptime", "percent", "uptime", "warn",
                     f"{why} ({source}); run `{monitor}` (or install it) to measure uptime",
                     kind="process", next_command=monitor)
    up = sum(1 for r in recent if r.get("status") != "fail")
    percent = 100.0 * up / len(recent)
    first = min(w for r in recent if (w := _when(r)) is not None)
    status: Status = "pass" if percent >= target else "fail"
    evidence = (f"{percent:.2f} % of {len(recent)} monitor rounds up since "
                f"{first:%Y-%m-%d %H:%M} UTC (target {target} %)")
    return _line(ENVIRONMENT, "uptime", "percent", "uptime", status, evidence,
                 value=round(percent, 3), unit="%", kind="process",
                 next_command=f"adapto monitor -e {env_name} --once")


# --- certificates -------------------------------------------------------------------------


def certificate_line(host: str, env_name: str, served: CheckResult | None,
                     file_not_after: dt.datetime | None, file_error: str | None,
                     now: dt.datetime | None = None,
                     warn_days: int = CERT_WARN_DAYS) -> CheckResult:
    """The certificate as served (health's check) and as the file on the host (facts).

    Expired (or served failing) fails; fewer than ``warn_days`` days left warns.
    """
    now = now or dt.datetime.now(dt.UTC)
    parts: list[str] = []
    statuses: list[Status] = []
    days: list[float] = []
    if served is not None:
        parts.append(f"served: {served.output or served.status}")
        value = served.observed_value
        if isinstance(value, int | float) and not isinstance(value, bool):
            days.append(float(value))
        statuses.append("fail" if served.status == "fail" else "pass")
    if file_not_after is not None:
        left = (file_not_after - now).total_seconds() / 86400
        days.append(left)
        parts.append(f"file: {left:.0f} days left (not after {file_not_after:%Y-%m-%d})")
    elif file_error:
        parts.append(f"file: {file_error}")
        statuses.append("fail")
    least = min(days) if days else None
    if least is not None:
        statuses.append("fail" if least < 0 else "warn" if least < warn_days else "pass")
    if not statuses:
        statuses.append("fail")
        parts.append("no certificate read")
    status = _worst(statuses)
    return _line(host, "certificate", "daysLeft", "certificate", status, "; ".join(parts),
                 value=round(least, 1) if least is not None else None, unit="days",
                 kind="tls", next_command=f"adapto ssl status -e {env_name}")


# --- firewall -------------------------------------------------------------------------------


def firewall_line(host: str, env_name: str, manage: bool, plan: Any | None,
                  error: str | None = None) -> CheckResult:
    """ufw as the inventory plans it (``plan``: a firewall.plan.FirewallPlan)."""
    command = f"adapto firewall plan -e {env_name}"
    if not manage:
        return _line(host, "firewall", "planned", "firewall", "warn",
                     "not managed (firewall.manage: false): adapto does not check or apply "
                     "this environment's firewall", kind="config")
    if error or plan is None:
        return _line(host, "firewall", "planned", "firewall", "fail",
                     f"not read: {error or 'no plan'}", kind="network", next_command=command)
    if plan.refusal:
        return _line(host, "firewall", "planned", "firewall", "fail", plan.refusal,
                     kind="config", next_command=command)
    if plan.in_sync:
        return _line(host, "firewall", "planned", "firewall", "pass",
                     f"ufw {plan.state}, {len(plan.rules)} rules as planned",
                     value=len(plan.rules), unit="rules")
    gaps = []
    if plan.missing:
        gaps.append("missing: " + ", ".join(r.describe() for r in plan.missing))
    if plan.deletions:
        gaps.append("to remove: " + ", ".join(r.describe() for r in plan.deletions))
    if plan.conflicts:
        gaps.append("conflicts: " + "; ".join(plan.conflicts))
    if plan.settings:
        gaps.append("settings: " + ", ".join(plan.settings))
    return _line(host, "firewall", "planned", "firewall", "fail",
                 f"ufw {plan.state}, not as planned: " + "; ".join(gaps or plan.changes),
                 value=len(plan.changes), unit="changes", kind="config",
                 next_command=f"adapto firewall apply -e {env_name}")


# --- secrets ------------------------------------------------------------------------------------


def secrets_lines(env_name: str, local: Iterable[Any], hosts: dict[str, list[Any] | str],
                  needed: int) -> list[CheckResult]:
    """Names only: missing here (a warning: CI may not hold them; a secrets file others can
    read fails) and on each backend host (missing fails).

    ``local`` and ``hosts`` hold secrets_check.SecretProblem values; a host's
    value is a string when its .env could not be read.
    """
    command = f"adapto secrets check -e {env_name}"
    lines = []
    here = [p for p in local if p.kind == "missing"]
    exposed = [p for p in local if p.kind != "missing"]  # the secrets file's mode: fails
    parts = [p.message for p in exposed]
    if here:
        parts.append(f"{len(here)} of {needed} needed secrets have no value here: "
                     + ", ".join(p.name for p in here)
                     + " (fine where only the hosts hold them; else `adapto secrets set "
                       "NAME` or export them)")
    status: Status = "fail" if exposed else "warn" if here else "pass"
    lines.append(_line(ENVIRONMENT, "secrets", "local", "secrets here", status,
                       "; ".join(parts) or f"all {needed} needed secrets have a value here",
                       value=len(here), unit="missing", kind="config", next_command=command))
    for host, problems in hosts.items():
        if isinstance(problems, str):
            lines.append(_line(host, "secrets", "complete", "secrets", "fail",
                               f".env not read: {problems}", kind="network",
                               next_command=command))
            continue
        failing = [p for p in problems if p.failing]
        status = "fail" if failing else "warn" if problems else "pass"
        evidence = ("; ".join(p.message for p in problems) if problems
                    else "every shipped secret is set in the shared .env, mode and owner right")
        lines.append(_line(host, "secrets", "complete", "secrets", status, evidence,
                           value=len(failing), unit="missing", kind="config",
                           next_command=command))
    return lines


def secrets_report_lines(env_name: str, report: Any | None, error: str | None = None
                         ) -> list[CheckResult]:
    """:func:`secrets_lines` from `secrets check`'s report (procedures.secrets.SecretsReport)."""
    if report is None:
        return [_line(ENVIRONMENT, "secrets", "local", "secrets here", "fail",
                      f"not checked: {error}", kind="config",
                      next_command=f"adapto secrets check -e {env_name}")]
    local = [p for p in report.problems if p.where == "local"]
    hosts: dict[str, list[Any] | str] = {}
    for host, info in report.hosts.items():
        hosts[host] = ([p for p in report.problems if p.where == host] if info.get("read")
                       else str(info.get("error") or "not read"))
    return secrets_lines(env_name, local, hosts, len(report.needs))


# --- RLS ------------------------------------------------------------------------------------------


def rls_line(host: str, env_name: str, check: Any | None, error: str | None = None
             ) -> CheckResult:
    """`db check`'s answer (a dbaudit.DbCheck): findings fail; not checkable warns."""
    command = f"adapto db check -e {env_name}"
    if check is None:
        return _line(host, "rls", "findings", "RLS everywhere", "fail",
                     f"not checked: {error}", kind="database", next_command=command)
    if check.error:
        unchecked = "no python with psycopg" in check.error or "not set" in check.error
        return _line(host, "rls", "findings", "RLS everywhere",
                     "warn" if unchecked else "fail", f"not checked: {check.error}",
                     kind="database",
                     next_command=("adapto db check --database-url URL" if unchecked
                                   else command))
    if check.findings:
        listed = "; ".join(f"{f.lint}: {f.object}" for f in check.findings)
        return _line(host, "rls", "findings", "RLS everywhere", "fail",
                     f"{len(check.findings)} finding(s) in {check.role}@{check.database}: "
                     f"{listed}", value=len(check.findings), unit="findings",
                     kind="database", next_command=command)
    return _line(host, "rls", "findings", "RLS everywhere", "pass",
                 f"{check.role}@{check.database} passes all {check.lints_run} RLS lints",
                 value=0, unit="findings")


# --- regular updates --------------------------------------------------------------------------


def updates_line(host: str, updates: Any | None, now: dt.datetime | None = None,
                 stale_days: int = APT_LISTS_STALE_DAYS) -> CheckResult:
    """Pending security updates (a facts.Updates): any pending, or stale lists, warn."""
    upgrade = "apt-get update && apt-get upgrade (on the host)"
    if updates is None or updates.error:
        why = updates.error if updates is not None else "not read"
        return _line(host, "updates", "security", "security updates", "warn",
                     f"unknown: {why}", kind="config")
    age = updates.lists_age_days(now)
    stale = age is not None and age > stale_days
    listed = ", ".join(updates.security[:8]) + (" …" if len(updates.security) > 8 else "")
    evidence = (f"{len(updates.security)} security update(s) pending of {updates.pending}"
                + (f": {listed}" if updates.security else ""))
    if age is not None:
        evidence += f"; package lists {max(age, 0):.0f} day(s) old"
    status: Status = "warn" if updates.security or stale else "pass"
    return _line(host, "updates", "security", "security updates", status, evidence,
                 value=len(updates.security), unit="pending", kind="config",
                 next_command=upgrade)
