"""The firewall planner without a server: ufw's real output parsed, differences, lockouts.

The ufw texts below were printed by ufw 0.36.2 (Debian 12) inside a network
namespace; the planner's commands are checked by the real ufw with --dry-run.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from adapto_ops.commands.firewall import as_root, firewall_read
from adapto_ops.errors import EXIT_FAILED, EXIT_USAGE
from adapto_ops.facts import parse_facts
from adapto_ops.firewall.plan import FirewallPlan, plan_firewall, plan_json
from adapto_ops.firewall.rules import (
    UfwFacts,
    parse_added,
    parse_defaults,
    parse_rule,
    parse_ssh_port,
    parse_status_state,
    parse_ufw_facts,
)
from adapto_ops.inventory import Environment, load_inventory
from tests.e2e_support import adapto
from tests.ufw_samples import (
    DEFAULTS_DEBIAN,
    SHOW_ADDED_EMPTY,
    SHOW_ADDED_SYNCED,
    STATUS_VERBOSE_ACTIVE,
)

REPO = Path(__file__).resolve().parent.parent
PRODUCTION = load_inventory(REPO / "inventory.yaml").environment("production")
UFW = shutil.which("ufw") or shutil.which("ufw", path="/usr/sbin:/sbin")



def env_with(**firewall: Any) -> Environment:
    data = PRODUCTION.model_dump()
    data["firewall"] = {**data["firewall"], **firewall}
    return Environment.model_validate(data)


def facts(added: str = SHOW_ADDED_EMPTY, *, active: bool = False,
          defaults: str = DEFAULTS_DEBIAN) -> UfwFacts:
    status = STATUS_VERBOSE_ACTIVE if active else "Status: inactive\n"
    return parse_ufw_facts(status, added, defaults)


def added(*rules: str) -> str:
    return "Added user rules (see 'ufw status' for running firewall):\n" + "".join(
        f"ufw {r}\n" for r in rules)


def plan_for(env: Environment = PRODUCTION, ufw: UfwFacts | None = None,
             ssh_port: int | None = 22) -> FirewallPlan:
    return plan_firewall(env, env.hosts[0], ufw or facts(), ssh_port)


# --- parsing ufw's own words ---------------------------------------------------------------


def test_show_added_rules_parse_with_comments_and_specs() -> None:
    rules, error = parse_added(SHOW_ADDED_SYNCED)
    assert error is None
    assert [r.portspec for r in rules] == ["22/tcp", "80/tcp", "443/tcp", "3001/tcp", "3002/tcp"]
    assert [r.action for r in rules] == ["allow"] * 3 + ["deny"] * 2
    assert rules[0].comment == "adapto: ssh" and rules[0].managed
    assert rules[0].text == "allow 22/tcp comment 'adapto: ssh'"
    assert parse_added(SHOW_ADDED_EMPTY) == ([], None)


@pytest.mark.parametrize(("line", "expected"), [
    ("ufw allow 22", dict(action="allow", port="22", proto=None, simple=True, managed=False)),
    ("ufw limit 22/tcp", dict(action="limit", port="22", proto="tcp", simple=True)),
    ("ufw reject out 25/tcp", dict(action="reject", direction="out", port="25")),
    ("ufw allow 60000:61000/udp", dict(port="60000:61000", proto="udp", simple=True)),
    ("ufw allow in on eth0 to any port 80 proto tcp",
     dict(interface="eth0", port="80", proto="tcp", simple=True)),
    ("ufw allow from 10.0.0.0/8 to any port 22 proto tcp",
     dict(source="10.0.0.0/8", port="22", proto="tcp", simple=True)),
    ("ufw deny from 203.0.113.9", dict(action="deny", source="203.0.113.9", port=None)),
    ("ufw allow OpenSSH", dict(simple=False)),
    ("ufw route allow in on wg0 out on eth0", dict(action="route", simple=False)),
])
def test_rule_shapes(line: str, expected: dict[str, Any]) -> None:
    rule = parse_rule(line)
    assert rule is not None
    for key, value in expected.items():
        assert getattr(rule, key) == value, key
    assert rule.text == line[4:]


def test_coverage_of_ports_ranges_and_protocols() -> None:
    rule = parse_rule("ufw deny 20:30/tcp")
    assert rule is not None and rule.covers(22) and not rule.covers(31)
    assert not rule.covers(22, "udp")
    both = parse_rule("ufw allow 22,80")
    assert both is not None and both.covers(80, "udp") and not both.covers(81)
    sourced = parse_rule("ufw deny from 203.0.113.9 to any port 22")
    assert sourced is not None and not sourced.from_anywhere


def test_states_defaults_and_ssh_port() -> None:
    assert parse_status_state(STATUS_VERBOSE_ACTIVE) == "active"
    assert parse_status_state("Status: inactive") == "inactive"
    assert parse_status_state("not-installed") == "not installed"
    assert parse_status_state("ERROR: You need to be root to run this script").startswith(
        "unknown (ERROR: You need to be root")
    assert parse_defaults(DEFAULTS_DEBIAN) == ("deny", "allow")
    assert parse_defaults('DEFAULT_INPUT_POLICY="ACCEPT"') == ("allow", None)
    assert parse_ssh_port("10.231.0.2 40022 10.231.0.1 22") == 22
    assert parse_ssh_port("") is None
    unreadable = parse_ufw_facts("Status: active", "sudo: a password is required", "")
    assert unreadable.error == "sudo: a password is required" and not unreadable.readable


def test_facts_read_carries_typed_firewall_and_ssh_port() -> None:
    stdout = "\n".join(["@@ufw", STATUS_VERBOSE_ACTIVE, "@@ufw_added", SHOW_ADDED_SYNCED,
                        "@@ufw_defaults", DEFAULTS_DEBIAN, "@@ssh_port",
                        "127.0.0.1 50000 127.0.0.1 2222", "@@end"])
    f = parse_facts("web1", stdout)
    assert f.ufw == "active" and f.ssh_port == 2222
    assert len(f.firewall.rules) == 5 and f.firewall.default_incoming == "deny"
    # status's plain rule lines leave out verbose's header lines
    assert not any(r.startswith(("Logging", "Default", "New profiles")) for r in f.ufw_rules)
    assert len(f.ufw_rules) == 3


def test_read_command_uses_sudo_only_for_other_users() -> None:
    assert as_root("root", "ufw status").endswith(" ufw status")
    assert not as_root("root", "ufw status").startswith("sudo")
    assert as_root("deploy", "ufw status").startswith("sudo -n ")
    read = firewall_read("deploy")
    assert "sudo -n" in read and "SSH_CONNECTION" in read and read.endswith("echo @@end")


# --- plans -----------------------------------------------------------------------------------


def test_fresh_host_gets_ssh_first_and_enable_last() -> None:
    plan = plan_for()
    assert plan.refusal is None and not plan.in_sync
    assert plan.changes[0] == "ufw allow 22/tcp comment 'adapto: ssh'"
    assert plan.changes[-1] == "ufw --force enable"
    assert plan.changes == [
        "ufw allow 22/tcp comment 'adapto: ssh'",
        "ufw allow 80/tcp comment 'adapto: allow'",
        "ufw allow 443/tcp comment 'adapto: allow'",
        "ufw deny 3001/tcp comment 'adapto: deny'",
        "ufw deny 3002/tcp comment 'adapto: deny'",
        "ufw --force enable",
    ]
    assert [r.portspec for r in plan.missing] == ["22/tcp", "80/tcp", "443/tcp", "3001/tcp",
                                                  "3002/tcp"]
    assert plan.settings == ["enable ufw"]


def test_synced_host_is_in_sync() -> None:
    plan = plan_for(ufw=facts(SHOW_ADDED_SYNCED, active=True))
    assert plan.in_sync and plan.changes == [] and plan.missing == [] and plan.extra == []
    assert plan_json(plan)["in_sync"] is True


def test_only_the_difference_and_only_adapto_rules_are_deleted() -> None:
    ufw = facts(added("allow 22/tcp comment 'adapto: ssh'",
                      "allow 8080/tcp comment 'adapto: allow'",
                      "allow 5432/tcp",
                      "allow 80/tcp",
                      "deny 3001/tcp comment 'adapto: deny'"),
                active=True, defaults='DEFAULT_INPUT_POLICY="ACCEPT"\n'
                                      'DEFAULT_OUTPUT_POLICY="ACCEPT"\n')
    plan = plan_for(ufw=ufw)
    assert plan.changes == [
        "ufw delete allow 8080/tcp comment 'adapto: allow'",
        "ufw allow 443/tcp comment 'adapto: allow'",
        "ufw deny 3002/tcp comment 'adapto: deny'",
        "ufw default deny incoming",
    ]
    # 80/tcp present without our comment counts as present; 5432 is foreign: kept, reported.
    assert [r.portspec for r in plan.foreign] == ["5432/tcp"]
    assert [r.portspec for r in plan.deletions] == ["8080/tcp"]
    assert plan.conflicts == [] and plan.refusal is None


def test_old_ssh_port_rule_is_deleted_after_the_new_one_is_allowed() -> None:
    env = env_with(allow=["80/tcp", "443/tcp"])
    host = env.hosts[0].model_copy(update={"port": 2222})
    ufw = facts(added("allow 22/tcp comment 'adapto: ssh'"), active=True)
    plan = plan_firewall(env, host, ufw, 2222)
    assert plan.changes[:2] == ["ufw allow 2222/tcp comment 'adapto: ssh'",
                                "ufw delete allow 22/tcp comment 'adapto: ssh'"]


def test_foreign_rule_opening_a_denied_port_is_a_conflict() -> None:
    plan = plan_for(ufw=facts(SHOW_ADDED_SYNCED.replace(
        "ufw allow 22/tcp", "ufw allow 3000:3005/tcp\nufw allow 22/tcp"), active=True))
    assert plan.changes == [] and not plan.in_sync
    assert len(plan.conflicts) == 1 and "allow 3000:3005/tcp" in plan.conflicts[0]
    assert "ufw delete allow 3000:3005/tcp" in plan.conflicts[0]


# --- lockouts: refused, with the reason in one line ------------------------------------------


@pytest.mark.parametrize(("deny", "where"), [
    (["22/tcp"], "firewall.deny 22/tcp"),
    (["22"], "firewall.deny 22 "),
    (["20:30/tcp"], "firewall.deny 20:30/tcp"),
])
def test_inventory_denying_the_ssh_port_is_refused(deny: list[str], where: str) -> None:
    plan = plan_for(env_with(deny=deny))
    assert plan.refusal is not None and where in plan.refusal and "SSH port 22" in plan.refusal
    assert plan.refusal_exit == EXIT_USAGE and not plan.in_sync
    assert "\n" not in plan.refusal


def test_connected_through_another_port_is_refused() -> None:
    plan = plan_for(ssh_port=2222)
    assert plan.refusal is not None and "connected through SSH port 2222" in plan.refusal
    assert "port 22" in plan.refusal and plan.refusal_exit == EXIT_USAGE


def test_foreign_deny_before_the_ssh_allow_is_refused() -> None:
    plan = plan_for(ufw=facts(added("deny 22/tcp")))
    assert plan.refusal is not None and "`deny 22/tcp`" in plan.refusal
    assert "ufw delete deny 22/tcp" in plan.refusal and plan.refusal_exit == EXIT_FAILED
    # a deny for one address does not block adapto
    assert plan_for(ufw=facts(added("deny from 203.0.113.9 to any port 22"))).refusal is None
    # an old adapto deny of the SSH port is deleted by the plan, so no lockout
    managed = plan_for(ufw=facts(added("deny 22/tcp comment 'adapto: deny'")))
    assert managed.refusal is None
    assert managed.changes[:2] == ["ufw allow 22/tcp comment 'adapto: ssh'",
                                   "ufw delete deny 22/tcp comment 'adapto: deny'"]


def test_allowed_and_denied_port_and_unmanaged_and_missing_ufw_are_refused() -> None:
    both = plan_for(env_with(allow=["22/tcp", "3001/tcp"]))
    assert both.refusal is not None and "same port" in both.refusal
    unmanaged = plan_for(env_with(manage=False))
    assert unmanaged.refusal is not None and "manage is false" in unmanaged.refusal
    missing = plan_for(ufw=parse_ufw_facts("not-installed", "", ""))
    assert missing.refusal is not None and "not installed" in missing.refusal
    unreadable = plan_for(ufw=parse_ufw_facts("ERROR: You need to be root to run this script",
                                              "", ""))
    assert unreadable.refusal is not None and "cannot read ufw" in unreadable.refusal


@pytest.mark.skipif(UFW is None, reason="ufw not installed")
def test_every_planned_command_is_accepted_by_ufw() -> None:
    plan = plan_for(ufw=facts(added("allow 8080/tcp comment 'adapto: allow'"),
                              defaults='DEFAULT_INPUT_POLICY="ACCEPT"\n'))
    assert any(c.startswith("ufw default") for c in plan.changes)
    for command in plan.changes:
        if command.startswith(("ufw delete", "ufw --force enable")):
            continue  # --dry-run of these depends on the machine's own rules
        argv = shlex.split(command)
        proc = subprocess.run([UFW, "--dry-run", *argv[1:]], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)


# --- the CLI refuses bad input in one line, before connecting --------------------------------


def test_cli_refuses_unmanaged_firewall_in_one_line() -> None:
    proc = adapto("firewall", "apply", "-e", "sandbox", "--yes",
                  "-i", str(REPO / "inventory.yaml"))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert proc.stderr.startswith("error: ") and "firewall.manage is false" in proc.stderr
    bad = adapto("firewall", "frobnicate", "-e", "sandbox")
    assert bad.returncode == 2


def test_host_set_up_by_the_rendered_script_reads_in_sync() -> None:
    """`adapto render firewall`'s script and `firewall apply` mark rules alike."""
    from adapto_ops.commands.firewall import ufw_commands

    env = PRODUCTION
    rules = [c.removeprefix("ufw ") for c in ufw_commands(env, env.hosts[0])
             if c.startswith(("ufw allow", "ufw deny"))]
    plan = plan_for(ufw=facts(added(*rules), active=True))
    assert plan.in_sync, plan.changes
