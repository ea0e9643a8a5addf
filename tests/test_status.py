"""`adapto status`'s pure pieces, and the PM2 boot-persistence commands a deploy runs.

The facts come from canned gather output (the same text the host prints), so
these tests need no server; tests/test_status_e2e.py reads a real sandbox.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from adapto_ops.commands import pm2 as pm2_cmd
from adapto_ops.deploy.host import HostDeployer
from adapto_ops.events import ListReporter
from adapto_ops.facts import parse_facts
from adapto_ops.procedures.status import HostStatus, age_seconds, host_json, masker
from adapto_ops.procedures.status_view import host_rows, human_age, print_status
from adapto_ops.remote import RecordingTransport
from adapto_ops.selection import select

REPO = Path(__file__).resolve().parent.parent
NAME = "ai-platform-backend"


def gather_output(*, pm2: list[dict[str, object]] | None, days_left: float = 60,
                  nginx_test: str = "nginx: configuration file test is successful\nexit=0",
                  history: dict[str, object] | None = None, listeners: str = "") -> str:
    not_after = dt.datetime.now(dt.UTC) + dt.timedelta(days=days_left)
    release = {"id": "20261130100000", "created": "2026-11-30T10:00:00Z",
               "revision": "abc1234", "backend_release": "20261129090000"}
    return "\n".join([
        "@@pm2_daemon", "yes" if pm2 is not None else "no",
        "@@pm2", json.dumps(pm2) if pm2 is not None else "null",
        "@@pm2_startup", "saved=yes", "unit=missing",
        "@@nginx_running", "4242",
        "@@nginx_test", nginx_test,
        "@@release", json.dumps(release),
        "@@certificate", f"notAfter={not_after:%b %d %H:%M:%S %Y} GMT",
        "subject=CN = adaptoai.ru",
        "@@disk", "/dev/sda1 41152736 30000000 10000000 75% /",
        "@@ufw", "Status: active", "", "To                         Action      From",
        "--                         ------      ----",
        "22/tcp                     ALLOW       Anywhere",
        "@@listeners", listeners,
        "@@history", json.dumps(history) if history else "",
        "@@end",
    ])


def app(port: int, status: str = "online", **extra: object) -> dict[str, object]:
    return {"name": f"{NAME}-{port}", "pid": 100 + port if status == "online" else None,
            "status": status, "namespace": NAME, "restarts": 0, "unstable_restarts": 0,
            "uptime_s": 3600 if status == "online" else None, "cpu": 1.5,
            "memory": 50_000_000, "port": port, "cwd": "/srv/releases/x/backend", **extra}


def row_for(output: str, **kwargs: object) -> dict[str, object]:
    facts = parse_facts("prod1", output, 0.1)
    return host_json(HostStatus("prod1", facts), NAME, [3001, 3002], **kwargs)  # type: ignore[arg-type]


def rows_text(row: dict[str, object]) -> dict[str, tuple[str, str]]:
    return {what: (state, detail) for what, state, detail in host_rows(row)}


def test_a_healthy_host_as_json_and_rows() -> None:
    history = {"release": "20261130100000", "action": "deploy all", "result": "ok",
               "time": "2026-11-30T10:00:05Z", "user": "ci@runner", "error": None,
               "bytes_sent": 1234}
    row = row_for(gather_output(pm2=[app(3001), app(3002)], history=history))
    assert row["reachable"] is True
    assert [p["name"] for p in row["pm2"]["processes"]] == [f"{NAME}-3001", f"{NAME}-3002"]
    assert row["pm2"]["not_in_pm2"] == [] and row["pm2"]["saved"] is True
    assert row["nginx"] == {"running": True, "pid": 4242, "config_ok": True, "config_error": None}
    assert row["release"]["id"] == "20261130100000" and row["release"]["revision"] == "abc1234"
    assert 59 < row["certificate"]["days_left"] <= 60
    assert row["firewall"]["ufw"] == "active" and row["firewall"]["rules"] == [
        "22/tcp                     ALLOW       Anywhere"]
    assert row["disk"]["free_percent"] == pytest.approx(24.3, abs=0.1)
    # The last deploy is reduced to what status shows (no bytes_sent, nothing else).
    assert row["last_deploy"] == {k: history[k] for k in
                                  ("release", "action", "result", "time", "user", "error")}
    json.dumps(row)  # plain data

    rows = rows_text(row)
    assert rows[f"pm2 {NAME}-3001"][0] == "[green]online[/]"
    assert "up 1h, 0 restarts" in rows[f"pm2 {NAME}-3001"][1]
    assert "50.0 MB" in rows[f"pm2 {NAME}-3001"][1]
    assert "startup unit [yellow]missing[/]" in rows["pm2 boot"][0]
    assert "[green]" in rows["certificate"][0]
    assert rows["nginx config"][0] == "[green]valid[/]"
    assert "backend from 20261129090000" in rows["release"][1]
    assert rows["last deploy"][0] == "deploy all: [green]ok[/]"
    assert "by ci@runner" in rows["last deploy"][1]


def test_crash_loop_missing_instance_short_certificate_and_bad_config_stand_out() -> None:
    looping = app(3001, status="waiting restart", restarts=7, unstable_restarts=7)
    output = gather_output(
        pm2=[looping], days_left=5,
        nginx_test="nginx: [emerg] unknown directive \"bogus\" in /etc/nginx/site:3\nexit=1")
    row = row_for(output)
    rows = rows_text(row)
    assert row["pm2"]["processes"][0]["crash_loop"] is True
    assert "CRASH LOOP" in rows[f"pm2 {NAME}-3001"][0]
    assert "7 restarts" in rows[f"pm2 {NAME}-3001"][1]
    assert row["pm2"]["not_in_pm2"] == [f"{NAME}-3002"]
    assert "not in PM2" in rows[f"pm2 {NAME}-3002"][0]
    assert rows["certificate"][0].startswith("[red]")
    assert rows["nginx config"][0] == "[red]invalid[/]"
    assert 'unknown directive "bogus"' in rows["nginx config"][1]


def test_pm2_daemon_down_means_every_instance_is_missing() -> None:
    row = row_for(gather_output(pm2=None))
    assert row["pm2"]["daemon"] is False
    assert row["pm2"]["not_in_pm2"] == [f"{NAME}-3001", f"{NAME}-3002"]
    assert "daemon not running" in rows_text(row)["pm2"][0]


def test_a_foreign_port_holder_is_named_and_its_command_masked() -> None:
    listeners = "3001 777 777,1 node /opt/other.js --token=s3cr3t-value\n"
    row = row_for(gather_output(pm2=[app(3002)], listeners=listeners),
                  mask=masker(["s3cr3t-value"]))
    assert row["port_holders"] == [{"port": 3001, "pid": 777,
                                    "command": "node /opt/other.js --token=***"}]
    assert "s3cr3t-value" not in json.dumps(row)


def test_sandbox_boot_is_sandbox_up() -> None:
    row = row_for(gather_output(pm2=[app(3001), app(3002)]), sandbox=True)
    assert row["pm2"]["boot"] == "sandbox up"
    assert "sandbox up" in rows_text(row)["pm2 boot"][1]


def test_unreachable_host_is_one_object() -> None:
    row = host_json(HostStatus("prod2", None, "cannot connect to 10.0.0.9:22"), NAME, [3001])
    assert row == {"host": "prod2", "reachable": False, "error": "cannot connect to 10.0.0.9:22"}


def test_print_status_escapes_host_text(capsys: pytest.CaptureFixture[str]) -> None:
    history = {"release": "r1", "action": "deploy [bold]all", "result": "ok",
               "time": "2026-11-30T10:00:05Z", "user": "x"}
    print_status("production", [row_for(gather_output(pm2=[app(3001)], history=history)),
                                {"host": "prod2", "reachable": False, "error": "refused"}])
    out = capsys.readouterr().out
    assert "production / prod1" in out and "deploy [bold]all" in out
    assert "prod2: unreachable" in out


def test_ages() -> None:
    assert age_seconds("2026-11-30T10:00:00Z", now=dt.datetime(
        2026, 11, 30, 12, 0, tzinfo=dt.UTC).timestamp()) == 7200
    assert age_seconds("garbage") is None and age_seconds(None) is None
    assert [human_age(s) for s in (5, 120, 7200, 200000, None)] == ["5s", "2m", "2h", "2d", "?"]


# --- PM2 boot persistence ----------------------------------------------------------------


def test_ensure_startup_for_root_installs_the_unit_only_if_not_enabled() -> None:
    command = pm2_cmd.ensure_startup("root")
    assert command == (
        "if command -v systemctl >/dev/null 2>&1 && "
        "! systemctl is-enabled pm2-root >/dev/null 2>&1; then "
        'pm2 startup systemd -u root --hp "$HOME" >/dev/null 2>&1 '
        f"|| echo {pm2_cmd.STARTUP_FAILED}; fi")


def test_ensure_startup_for_another_user_goes_through_sudo_without_a_prompt() -> None:
    command = pm2_cmd.ensure_startup("deploy")
    assert "systemctl is-enabled pm2-deploy" in command
    assert 'sudo -n env PATH="$PATH" pm2 startup systemd -u deploy --hp "$HOME"' in command


def test_ensure_startup_quotes_the_user() -> None:
    assert "'we ird'" in pm2_cmd.ensure_startup("we ird")


def deployer(env_name: str) -> HostDeployer:
    selection = select(str(REPO / "inventory.yaml"), env_name)
    return HostDeployer(RecordingTransport(None), selection.targets[0],  # type: ignore[arg-type]
                        ListReporter(), dry_run=True)


def test_production_deploy_saves_and_installs_startup_sandbox_never_runs_pm2_startup() -> None:
    production = deployer("production").persistence(restarted=False)
    assert production == [pm2_cmd.save(), pm2_cmd.ensure_startup("root")]
    assert deployer("production").persistence(restarted=True) == production
    # The sandbox is this very machine: `pm2 startup` would install a systemd unit here.
    assert deployer("sandbox").persistence(restarted=True) == [pm2_cmd.save()]
    assert deployer("sandbox").persistence(restarted=False) == []
