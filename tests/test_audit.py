"""`adapto audit`'s composition, from fake inputs (no host, no database).

Each criterion's line is judged from values the other parts of adapto
produce: health's CheckResults, the monitor's rounds, facts (certificate,
updates), a real FirewallPlan from plan_firewall over parsed ufw output,
secrets_check's problems and a DbCheck. The last tests run audit_lines over a
whole environment with those inputs, and JUnit/JSON through health's reporters.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from adapto_ops.audit import lines as L
from adapto_ops.dbaudit import LINTS, DbCheck, finding
from adapto_ops.facts import Certificate, HostFacts, Updates, parse_updates
from adapto_ops.health import report
from adapto_ops.health.model import CheckResult, exit_code
from adapto_ops.inventory import parse_inventory
from adapto_ops.procedures.audit import AuditInputs, HostRead, audit_lines
from adapto_ops.selection import Selection
from tests.ufw_samples import (
    DEFAULTS_DEBIAN,
    SHOW_ADDED_SSH_ONLY,
    SHOW_ADDED_SYNCED,
    STATUS_ACTIVE_SSH_ONLY,
)

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
REPO = Path(__file__).resolve().parent.parent


def result(key: str, status: str, value: object = None, output: str = "",
           host: str = "web1", name: str | None = None) -> CheckResult:
    component, measurement = key.split(":")
    return CheckResult(host, component, measurement, name or component, status,  # type: ignore[arg-type]
                       value, None, output, kind=None if status == "pass" else "slow")


# --- health ---------------------------------------------------------------------------------


def test_health_lines_split_checks_and_budgets_and_leave_the_certificate() -> None:
    results = [result("api:responseTime", "pass", 35.0), result("page:responseTime", "warn",
                                                                2400.0, "2400 ms > budget"),
               result("nginx:config", "pass"), result("pm2:instances", "fail", output="1 of 2"),
               result("certificate:daysLeft", "pass", 80.0)]
    out = L.health_lines(results, "prod", 200, 2000)
    assert [(r.component, r.status) for r in out] == [("health", "fail"), ("budgets", "warn")]
    assert "pm2: fail (1 of 2)" in out[0].output and "1/2 pass" in out[0].output
    assert out[1].output == "api 35 ms (budget 200 ms), page 2400 ms (budget 2000 ms)"
    assert out[0].next_command == "adapto health -e prod"


def test_health_lines_all_pass() -> None:
    out = L.health_lines([result("nginx:config", "pass"), result("api:responseTime", "pass", 9)],
                         "prod", 200, 2000)
    assert [r.status for r in out] == ["pass", "pass"] and out[0].output == "all 1 pass"


# --- uptime -------------------------------------------------------------------------------------


def rounds(up: int, down: int, start: dt.datetime = NOW - dt.timedelta(days=1)) -> list[dict]:
    out = []
    for i in range(up + down):
        when = start + dt.timedelta(seconds=30 * i)
        out.append({"round": i + 1, "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "status": "fail" if i < down else "warn" if i % 7 == 0 else "pass"})
    return out


def test_no_history_warns() -> None:
    line = L.uptime_line("prod", None, ".adapto/monitor/prod.jsonl", NOW)
    assert line.status == "warn" and "no monitor history" in line.output
    assert ".adapto/monitor/prod.jsonl" in line.output


@pytest.mark.parametrize(("up", "down", "status"), [(995, 5, "pass"), (994, 6, "fail"),
                                                    (1000, 0, "pass")])
def test_uptime_against_99_5(up: int, down: int, status: str) -> None:
    line = L.uptime_line("prod", rounds(up, down), "f", NOW)
    assert line.status == status, line.output
    assert line.observed_value == pytest.approx(100 * up / (up + down), abs=1e-3)
    assert f"of {up + down} monitor rounds" in line.output  # warn rounds count as up


def test_uptime_ignores_rounds_older_than_the_window() -> None:
    old = rounds(0, 50, NOW - dt.timedelta(days=40))
    line = L.uptime_line("prod", old + rounds(100, 0), "f", NOW)
    assert line.status == "pass" and line.observed_value == 100.0
    only_old = L.uptime_line("prod", old, "f", NOW)
    assert only_old.status == "warn" and "last 30 days" in only_old.output


# --- certificate ----------------------------------------------------------------------------


@pytest.mark.parametrize(("days", "status"), [(80, "pass"), (10, "warn"), (-1, "fail")])
def test_certificate_file_days(days: int, status: str) -> None:
    line = L.certificate_line("web1", "prod", None, NOW + dt.timedelta(days=days), None, NOW)
    assert line.status == status, line.output
    assert f"{days} days left" in line.output


def test_certificate_served_failing_fails_even_if_the_file_is_fine() -> None:
    served = result("certificate:daysLeft", "fail", None, "certificate not trusted")
    line = L.certificate_line("web1", "prod", served, NOW + dt.timedelta(days=80), None, NOW)
    assert line.status == "fail" and "served: certificate not trusted" in line.output


def test_certificate_served_soon_expiring_warns_at_14_days() -> None:
    served = result("certificate:daysLeft", "pass", 12.5, "valid until 2026-12-18")
    line = L.certificate_line("web1", "prod", served, None, None, NOW)
    assert line.status == "warn" and line.observed_value == 12.5


def test_certificate_missing_file_fails() -> None:
    line = L.certificate_line("web1", "prod", None, None, "No such file or directory", NOW)
    assert line.status == "fail" and "No such file" in line.output


# --- firewall (with the real planner) ----------------------------------------------------------


def loaded_env(text_change: tuple[str, str] | None = None) -> Selection:
    text = (REPO / "inventory.yaml").read_text()
    if text_change:
        text = text.replace(*text_change)
    loaded = parse_inventory(text, REPO / "inventory.yaml")
    return Selection(loaded, "production")


def ufw_facts(status: str, added: str = SHOW_ADDED_SSH_ONLY) -> object:
    from adapto_ops.firewall.rules import parse_ufw_facts

    return parse_ufw_facts(status, added, DEFAULTS_DEBIAN)


def test_firewall_not_managed_warns() -> None:
    line = L.firewall_line("web1", "sandbox", False, None)
    assert line.status == "warn" and line.output.startswith("not managed")


def test_firewall_not_as_planned_fails_naming_what_is_missing() -> None:
    from adapto_ops.firewall.plan import plan_firewall

    selection = loaded_env()
    host = selection.env.hosts[0]
    active = STATUS_ACTIVE_SSH_ONLY
    plan = plan_firewall(selection.env, host, ufw_facts(active), 22)  # type: ignore[arg-type]
    line = L.firewall_line(host.name, "production", True, plan)
    assert line.status == "fail", line.output
    assert "missing:" in line.output and "80" in line.output and "443" in line.output
    assert line.next_command == "adapto firewall apply -e production"
    synced = plan_firewall(selection.env, host, ufw_facts(active, SHOW_ADDED_SYNCED),  # type: ignore[arg-type]
                           22)
    line = L.firewall_line(host.name, "production", True, synced)
    assert line.status == "pass", line.output
    assert line.output == "ufw active, 5 rules as planned"


def test_firewall_unreadable_fails() -> None:
    line = L.firewall_line("web1", "prod", True, None, "ssh: connection refused")
    assert line.status == "fail" and "connection refused" in line.output


# --- secrets --------------------------------------------------------------------------------


def test_secrets_missing_on_host_fails_local_missing_warns() -> None:
    from adapto_ops.facts import EnvFileFacts
    from adapto_ops.secrets_check import missing_on_host, missing_secrets, needed_secrets

    env = loaded_env().env
    shipped = frozenset(n.name for n in needed_secrets(env) if n.on_host)
    local = missing_secrets(env, {"SUPABASE_ANON_KEY": "x"})
    on_host = missing_on_host(env, "prod1", "root",
                              EnvFileFacts(True, 0o600, "root", frozenset({"SUPABASE_ANON_KEY"})),
                              "/srv/shared/.env")
    out = L.secrets_lines("production", local, {"prod1": on_host}, 2)
    assert [(r.host, r.status) for r in out] == [("environment", "warn"), ("prod1", "fail")]
    assert "NEXT_PUBLIC_SUPABASE_ANON_KEY" in out[0].output
    assert "have no value here" in out[0].output
    assert "NEXT_PUBLIC_SUPABASE_ANON_KEY" in out[1].output
    complete = L.secrets_lines(
        "production", [],
        {"prod1": missing_on_host(env, "prod1", "root",
                                  EnvFileFacts(True, 0o600, "root", shipped),
                                  "/srv/shared/.env")}, 2)
    assert [r.status for r in complete] == ["pass", "pass"], [r.output for r in complete]


def test_secrets_report_lines_unreadable_host_and_exposed_file() -> None:
    from adapto_ops.procedures.secrets import SecretsReport
    from adapto_ops.secrets_check import SecretProblem, needed_secrets

    env = loaded_env().env
    exposed = SecretProblem("", "local", "permissions", (),
                            ".secrets/production.env is readable by group/others (mode 0644)")
    secrets_report = SecretsReport(needed_secrets(env), frozenset(), {"prod1": {
        "read": False, "error": "ssh: connection refused"}}, [exposed])
    out = L.secrets_report_lines("production", secrets_report)
    assert [(r.host, r.status) for r in out] == [("environment", "fail"), ("prod1", "fail")]
    assert "mode 0644" in out[0].output and "connection refused" in out[1].output
    missing = L.secrets_report_lines("production", None, "bad inventory")
    assert missing[0].status == "fail" and "bad inventory" in missing[0].output


def test_secrets_unreadable_host_fails() -> None:
    out = L.secrets_lines("p", [], {"h": "ssh: timed out"}, 1)
    assert out[1].status == "fail" and "timed out" in out[1].output


# --- RLS ------------------------------------------------------------------------------------------


def test_rls_findings_fail_with_evidence() -> None:
    lint = LINTS[0]
    check = DbCheck(connected=True, role="app", database="db", lints_run=len(LINTS),
                    findings=[finding(lint, "public", "notes", "")])
    line = L.rls_line("web1", "prod", check)
    assert line.status == "fail" and "rls_disabled_in_public: public.notes" in line.output


def test_rls_clean_passes_and_unchecked_warns() -> None:
    clean = DbCheck(connected=True, role="app", database="db", lints_run=8)
    assert L.rls_line("web1", "prod", clean).status == "pass"
    node = DbCheck(error="no python with psycopg at /x/.venv/bin/python to check the database")
    assert L.rls_line("web1", "prod", node).status == "warn"
    refused = DbCheck(error="cannot connect: password authentication failed")
    assert L.rls_line("web1", "prod", refused).status == "fail"


# --- updates ------------------------------------------------------------------------------


APT = """lists=1796472000
exit=0
base-files/oldstable 12.4+deb12u15 amd64 [upgradable from: 12.4+deb12u11]
libgcrypt20/oldstable,oldstable-security 1.10.1-3+deb12u1 amd64 [upgradable from: 1.10.1-3]
openssl/jammy-security 3.0.2 amd64 [upgradable from: 3.0.1]
"""


def test_updates_parse_and_line() -> None:
    updates = parse_updates(APT)
    assert updates is not None and updates.pending == 3
    assert updates.security == ("libgcrypt20", "openssl")
    line = L.updates_line("web1", updates, updates.lists_updated + dt.timedelta(days=1))
    assert line.status == "warn" and line.observed_value == 2
    assert "2 security update(s) pending of 3: libgcrypt20, openssl" in line.output


def test_updates_none_pending_but_stale_lists_warn() -> None:
    fresh = Updates(4, (), NOW - dt.timedelta(days=1))
    assert L.updates_line("h", fresh, NOW).status == "pass"
    stale = Updates(0, (), NOW - dt.timedelta(days=30))
    assert L.updates_line("h", stale, NOW).status == "warn"


def test_updates_failure_and_absence() -> None:
    failed = parse_updates("lists=1\nexit=100\nerror=E: Could not open lock file\n")
    assert failed is not None and failed.error and "lock file" in failed.error
    assert L.updates_line("h", failed).status == "warn"
    assert parse_updates("no-apt").error  # type: ignore[union-attr]
    assert parse_updates("") is None


# --- the whole composition ---------------------------------------------------------------


def sandbox_selection() -> Selection:
    loaded = parse_inventory((REPO / "inventory.yaml").read_text(), REPO / "inventory.yaml")
    return Selection(loaded, "sandbox")


def test_audit_lines_over_a_whole_environment(tmp_path: Path) -> None:
    from adapto_ops.facts import EnvFileFacts
    from adapto_ops.procedures.secrets import SecretsReport
    from adapto_ops.secrets_check import missing_on_host, missing_secrets, needed_secrets

    selection = sandbox_selection()
    host = selection.env.hosts[0].name
    facts = HostFacts(host, certificate=Certificate(NOW + dt.timedelta(days=300)),
                      updates=Updates(10, (), NOW))
    names = frozenset(selection.env.secrets.names)
    env_file = EnvFileFacts(True, 0o600, "root", names)
    secrets_report = SecretsReport(needed_secrets(selection.env), frozenset(),
                           {host: {"read": True}},
                           missing_secrets(selection.env, {})
                           + missing_on_host(selection.env, host, "root", env_file, "/x/.env"))
    inputs = AuditInputs(
        health=[result("nginx:config", "pass", host=host),
                result("api:responseTime", "pass", 20.0, host=host),
                result("certificate:daysLeft", "pass", 300.0, "valid", host=host)],
        hosts={host: HostRead(facts)}, secrets=secrets_report,
        rounds=None, rounds_source=".adapto/monitor/sandbox.jsonl",
        db=DbCheck(connected=True, role="app", database="ai", lints_run=8,
                   findings=[finding(LINTS[0], "public", "planted", "")]),
        db_host=host)
    out = audit_lines(selection, inputs)
    by = {r.component + ("/" + r.host if r.component == "secrets" else ""): r for r in out}
    assert by["health"].status == "pass" and by["budgets"].status == "pass"
    assert by["uptime"].status == "warn"
    assert by["certificate"].status == "pass"
    assert by["firewall"].status == "warn"  # the sandbox's firewall.manage is false
    assert by[f"secrets/{host}"].status == "pass", by[f"secrets/{host}"].output
    assert by["secrets/environment"].status == "warn"  # nothing set here: the hosts hold them
    assert by["rls"].status == "fail" and "public.planted" in by["rls"].output
    assert by["updates"].status == "pass"
    assert exit_code(out, strict=False) == 1
    xml = ET.fromstring(report.junit_xml(out, "sandbox", strict=False, what="audit"))
    cases = xml.findall(".//testcase")
    assert len(cases) == len(out)
    assert {c.get("classname") for c in cases} == {f"adapto.audit.sandbox.{host}",
                                                   "adapto.audit.sandbox.environment"}
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["rls:findings"]
