"""`adapto firewall` against real ufw and iptables, in network namespaces made here.

See tests/firewall_lab.py for the lab: a server namespace (real sshd, nginx TLS on
443, an HTTP server on the backend port, ufw on private copies of its files) and a
client namespace, joined by a veth pair. adapto runs in the client namespace.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from tests.e2e_support import said
from tests.firewall_lab import (
    BACKEND_PORT,
    DEPLOY_ENV,
    ENV,
    LOCK_DEPLOY_ENV,
    LOCK_ENV,
    MISSING,
    SERVER_IP,
    UFW,
    Lab,
    firewall_lab,
    machine_ufw,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(UFW is None or bool(MISSING), reason=f"missing: ufw? {MISSING}"),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    before = machine_ufw()
    with firewall_lab(tmp_path_factory.mktemp("adfw")) as made:
        yield made
    assert machine_ufw() == before, "the machine's own ufw changed"


def test_machine_ufw_is_inactive_and_untouched(lab: Lab) -> None:
    status, _, chains = machine_ufw()
    assert status == "Status: inactive" and chains == ""


def test_apply_blocks_backend_keeps_ssh_and_https(lab: Lab) -> None:
    before = machine_ufw()
    # Without a firewall, the backend port is reachable from outside: the check can fail.
    assert lab.connects(BACKEND_PORT) and lab.connects(22) and lab.connects(443)

    plan = lab.adapto("firewall", "plan", "-e", ENV, "--json")
    assert plan.returncode == 0, said(plan)
    host = json.loads(plan.stdout)["hosts"][0]["plan"]
    assert host["ufw"] == "inactive" and host["in_sync"] is False
    assert host["changes"][0] == "ufw allow 22/tcp comment 'adapto: ssh'"
    assert host["changes"][-1] == "ufw --force enable"

    rules = lab.server_rules()
    dry = lab.adapto("firewall", "apply", "-e", ENV, "--dry-run", "--yes")
    assert dry.returncode == 0, said(dry)
    assert "[dry-run] fw1:" in dry.stdout and "ufw --force enable" in dry.stdout
    dry_json = lab.adapto("firewall", "apply", "-e", ENV, "--dry-run", "--yes", "--json")
    assert dry_json.returncode == 0, said(dry_json)
    recorded = json.loads(dry_json.stdout.strip().splitlines()[-1])["recorded"]
    assert [c["command"].split(" ufw ", 1)[1] for c in recorded] == [
        c.removeprefix("ufw ") for c in host["changes"]]
    assert lab.server_rules() == rules and lab.connects(BACKEND_PORT)

    started = time.perf_counter()
    applied = lab.adapto("firewall", "apply", "-e", ENV, "--yes", "--json")
    apply_s = time.perf_counter() - started
    assert applied.returncode == 0, said(applied)
    result = json.loads(applied.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["hosts"][0]["in_sync_after"] is True
    assert result["hosts"][0]["applied"] == host["changes"]
    print(f"\nfirewall apply (fresh host, {len(host['changes'])} commands): {apply_s:.2f}s")

    assert not lab.connects(BACKEND_PORT), "backend port still reachable after apply"
    assert lab.new_ssh().stdout.strip() == "ssh-ok", lab.new_ssh().stderr
    https = lab.https()
    assert https.stdout == "https-ok\n", https.stderr
    assert machine_ufw() == before

    started = time.perf_counter()
    again = lab.adapto("firewall", "plan", "-e", ENV, "--json")
    plan_s = time.perf_counter() - started
    assert again.returncode == 0, said(again)
    synced = json.loads(again.stdout)["hosts"][0]["plan"]
    assert synced["in_sync"] is True and synced["changes"] == []
    assert synced["ufw"] == "active"
    print(f"firewall plan (in sync): {plan_s:.2f}s")

    status = lab.adapto("firewall", "status", "-e", ENV)
    assert status.returncode == 0, said(status)
    assert "in sync" in status.stdout and "deny 3001/tcp" in status.stdout


def test_second_apply_changes_nothing(lab: Lab) -> None:
    first = lab.adapto("firewall", "apply", "-e", ENV, "--yes", "--json")
    assert first.returncode == 0, said(first)
    rules = lab.server_rules()
    second = lab.adapto("firewall", "apply", "-e", ENV, "--yes", "--json")
    assert second.returncode == 0, said(second)
    result = json.loads(second.stdout.strip().splitlines()[-1])
    assert result["hosts"][0]["applied"] == []
    assert lab.server_rules() == rules


def test_lockout_plan_is_refused_and_changes_nothing(lab: Lab) -> None:
    lab.adapto("firewall", "apply", "-e", ENV, "--yes")
    rules = lab.server_rules()
    refused = lab.adapto("firewall", "apply", "-e", LOCK_ENV, "--yes")
    assert refused.returncode == 2, said(refused)
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: fw1: firewall.deny 22/tcp"), said(
        refused)
    assert lab.server_rules() == rules
    assert lab.new_ssh().stdout.strip() == "ssh-ok"
    planned = lab.adapto("firewall", "plan", "-e", LOCK_ENV)
    assert planned.returncode == 2 and "refused" in planned.stdout, said(planned)


def test_extra_adapto_rule_is_deleted_foreign_rule_kept(lab: Lab) -> None:
    """Rules added behind adapto's back: its own stale rule goes, a person's rule stays."""
    add = ("PATH=$PATH:/usr/sbin ufw allow 8081/tcp comment 'adapto: allow' && "
           "PATH=$PATH:/usr/sbin ufw allow 9000/tcp")
    made = lab.in_client("ssh", "-i", str(lab.key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
                         "-o", "BatchMode=yes", f"root@{SERVER_IP}", add)
    assert made.returncode == 0, made.stderr
    plan = lab.adapto("firewall", "plan", "-e", ENV, "--json")
    host = json.loads(plan.stdout)["hosts"][0]["plan"]
    assert host["changes"] == ["ufw delete allow 8081/tcp comment 'adapto: allow'"]
    assert host["foreign"] == ["allow 9000/tcp"]
    applied = lab.adapto("firewall", "apply", "-e", ENV, "--yes", "--json")
    assert applied.returncode == 0, said(applied)
    after = json.loads(lab.adapto("firewall", "plan", "-e", ENV, "--json").stdout)
    rules = after["hosts"][0]["plan"]["rules"]
    assert "allow 9000/tcp" in rules and not any("8081" in r for r in rules)
    assert after["hosts"][0]["plan"]["in_sync"] is True


def test_deploy_applies_the_plan_when_the_inventory_asks(lab: Lab) -> None:
    """deploy's one firewall step, seen through --dry-run: the real read, the commands
    recorded, a lockout refused before anything is switched."""
    reset = lab.in_client("ssh", "-i", str(lab.key), "-o",
                          f"UserKnownHostsFile={lab.known_hosts}", "-o", "BatchMode=yes",
                          f"root@{SERVER_IP}", "PATH=$PATH:/usr/sbin ufw --force reset")
    assert reset.returncode == 0, reset.stderr
    rules = lab.server_rules()
    asked = lab.adapto("deploy", "-e", DEPLOY_ENV, "--dry-run", "--yes", "--json", timeout=300)
    assert asked.returncode == 0, said(asked)
    assert "ufw allow 22/tcp comment 'adapto: ssh'" in asked.stdout
    assert "ufw --force enable" in asked.stdout
    plain = lab.adapto("deploy", "-e", ENV, "--dry-run", "--yes", "--json", timeout=300)
    assert plain.returncode == 0, said(plain)
    assert "ufw " not in plain.stdout  # apply_on_deploy defaults to false
    refused = lab.adapto("deploy", "-e", LOCK_DEPLOY_ENV, "--dry-run", "--yes", "--json",
                         timeout=300)
    assert refused.returncode == 2, said(refused)
    assert [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")] == [
        "error: fw1: firewall.deny 22/tcp would block SSH port 22, which adapto is connected "
        "through; remove it from firewall.deny"]
    assert lab.server_rules() == rules and lab.connects(BACKEND_PORT)
