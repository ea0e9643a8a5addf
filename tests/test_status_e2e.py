"""`adapto status`, and "a deploy never reports success over a dead backend", on a real sandbox.

One sandbox (sshd, nginx, PM2 on 127.0.0.91, this module's own slot) with the
reference backend deployed. The tests run in file order and share it: status
of a healthy host, status with real faults (a stopped instance, a broken site
config), an unreachable host, then the reboot story of issue 7 — `sandbox
down` + `up` like a reboot, with and without PM2's saved list — and an
unchanged deploy whose instances cannot come back (another process holds the
port), which must exit 1.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e_support import adapto, said, sandbox_marks
from tests.operate_sandbox import HOST, OpBox, Slot, deployed_sandbox

pytestmark = [pytest.mark.e2e, *sandbox_marks()]

SLOT = Slot("127.0.0.91", 2391, 8391, 8491, (3391, 3392))
NAME = "ai-platform-backend"
INSTANCES = [f"{NAME}-{port}" for port in SLOT.ports]


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("status"), SLOT) as deployed:
        yield deployed


def instance_answers(port: int) -> bool:
    try:
        response = httpx.get(f"http://{SLOT.address}:{port}/api/health", timeout=3,
                             trust_env=False)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def history(box: OpBox) -> list[dict[str, Any]]:
    path = box.root / ".adapto" / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def current(box: OpBox) -> str:
    return Path((box.root / "current").readlink()).name


def secret_values(box: OpBox) -> list[str]:
    text = (box.base / ".adapto" / "secrets.env").read_text()
    return [line.split("=", 1)[1] for line in text.splitlines() if "=" in line]


def status_json(box: OpBox) -> dict[str, Any]:
    result = box.cli("status", "--json")
    assert result.returncode == 0, said(result)
    rows = json.loads(result.stdout)
    assert [r["host"] for r in rows] == [HOST]
    return rows[0]


def sandbox(box: OpBox, action: str) -> None:
    result = box.cli("sandbox", action, timeout=120)
    assert result.returncode == 0, said(result)


@contextlib.contextmanager
def port_held_by_another_process(port: int) -> Iterator[None]:
    """An HTTP server that is not ours on an instance port, answering 500 to everything."""

    class Broken(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"not the backend\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((SLOT.address, port), Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


# --- status ------------------------------------------------------------------------------


@pytest.mark.timeout(240)  # includes bringing the module's sandbox up and deploying
def test_status_json_reports_the_deployed_host(box: OpBox) -> None:
    result = box.cli("status", "--json")
    assert result.returncode == 0, said(result)
    for value in secret_values(box):
        assert value not in result.stdout + result.stderr
    row = json.loads(result.stdout)[0]
    processes = {p["name"]: p for p in row["pm2"]["processes"]}
    apps = box.pm2_apps()
    for name in INSTANCES:
        assert processes[name]["status"] == "online"
        assert processes[name]["pid"] == apps[name]["pid"]
        assert processes[name]["crash_loop"] is False
        assert processes[name]["memory_bytes"] > 1_000_000
    assert row["pm2"]["daemon"] is True and row["pm2"]["not_in_pm2"] == []
    assert row["pm2"]["saved"] is True and row["pm2"]["boot"] == "sandbox up"
    assert row["nginx"]["running"] is True and row["nginx"]["pid"] == box.nginx_pid()
    assert row["nginx"]["config_ok"] is True
    assert row["release"]["id"] == current(box)
    assert 0 <= row["release"]["age_s"] < 600
    assert 29 < row["certificate"]["days_left"] <= 30  # `sandbox up` makes 30-day certificates
    assert row["firewall"]["ufw"] in {"inactive", "active", "not installed"}
    assert 0 < row["disk"]["free_bytes"] < row["disk"]["total_bytes"]
    last = row["last_deploy"]
    assert (last["release"], last["action"], last["result"]) == (current(box), "deploy all", "ok")
    assert row["port_holders"] == []


@pytest.mark.timeout(60)
def test_status_table_shows_a_stopped_instance_and_nginx_own_error(box: OpBox) -> None:
    site = box.site_config
    good = site.read_text()
    assert box.pm2("stop", INSTANCES[1]).returncode == 0
    site.write_text(good + "\nbogus_directive on;\n")
    try:
        result = box.cli("status")
    finally:
        site.write_text(good)
    assert result.returncode == 0, said(result)  # status reports; `health` judges
    out = result.stdout
    assert f"op / {HOST}" in out
    line = next(ln for ln in out.splitlines() if INSTANCES[1] in ln)
    assert "stopped" in line
    line = next(ln for ln in out.splitlines() if "nginx config" in ln)
    assert "invalid" in line and "bogus_directive" in line
    assert "running (master pid" in out and "days left" in out and "last deploy" in out


@pytest.mark.timeout(120)
def test_unchanged_deploy_starts_a_stopped_instance(box: OpBox) -> None:
    # Left stopped by the test before: "unchanged" must not mean "healthy".
    assert not instance_answers(SLOT.ports[1])
    releases = sorted(p.name for p in (box.root / "releases").iterdir())
    result = box.deploy()
    assert result.returncode == 0, said(result)
    assert "unchanged" in result.stdout and f"not running: {INSTANCES[1]}" in result.stdout
    assert "4/4 checks passed" in result.stdout
    assert sorted(p.name for p in (box.root / "releases").iterdir()) == releases
    assert all(instance_answers(port) for port in SLOT.ports)
    last = history(box)[-1]
    assert (last["action"], last["result"], last["started"]) == (
        "deploy all (unchanged)", "ok", [INSTANCES[1]])


@pytest.mark.timeout(60)
def test_unreachable_host_is_one_line_and_exit_1(box: OpBox) -> None:
    def add_host(env: dict[str, Any]) -> None:
        # Same address, a port nothing listens on (the private address is only a name:
        # status never contacts it).
        env["hosts"].append({**env["hosts"][0], "name": "gone", "port": SLOT.ssh_port + 1,
                             "private_address": "127.0.0.191"})

    variant = box.write_variant("unreachable", add_host)
    result = adapto("status", "-e", "op", "-i", str(variant))
    assert result.returncode == 1, said(result)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: gone: unreachable"), said(result)
    assert f"op / {HOST}" in result.stdout  # the reachable host is still shown
    as_json = adapto("status", "-e", "op", "-i", str(variant), "--json")
    assert as_json.returncode == 1
    rows = {r["host"]: r for r in json.loads(as_json.stdout)}
    assert rows["gone"]["reachable"] is False and rows[HOST]["reachable"] is True


# --- issue 7: a deploy never reports success over a dead backend --------------------------


@pytest.mark.timeout(120)
def test_sandbox_down_up_brings_the_instances_back_like_a_boot(box: OpBox) -> None:
    deploys = len(history(box))
    sandbox(box, "down")
    assert not any(instance_answers(port) for port in SLOT.ports)
    sandbox(box, "up")
    # `up` resurrected PM2's saved list, as PM2's boot unit does; no deploy ran. The
    # instances listen once their database pool is open: a few seconds after `up`.
    deadline = time.monotonic() + 20
    while not all(instance_answers(port) for port in SLOT.ports) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(instance_answers(port) for port in SLOT.ports)
    assert box.get().status_code == 200
    assert len(history(box)) == deploys


@pytest.mark.timeout(120)
def test_unchanged_deploy_after_a_boot_without_saved_list_starts_them(box: OpBox) -> None:
    sandbox(box, "down")
    (box.pm2_home / "dump.pm2").unlink()
    sandbox(box, "up")
    assert not any(instance_answers(port) for port in SLOT.ports)
    row = status_json(box)
    assert row["pm2"]["daemon"] is True and row["pm2"]["saved"] is False
    assert row["pm2"]["not_in_pm2"] == INSTANCES

    result = box.deploy()
    assert result.returncode == 0, said(result)
    assert "unchanged" in result.stdout and "4/4 checks passed" in result.stdout
    assert all(instance_answers(port) for port in SLOT.ports)
    assert box.get().status_code == 200
    last = history(box)[-1]
    assert (last["action"], last["result"], last["started"]) == (
        "deploy all (unchanged)", "ok", INSTANCES)
    # Started instances are saved again, so the next boot brings them back.
    row = status_json(box)
    assert row["pm2"]["saved"] is True
    assert row["last_deploy"]["action"] == "deploy all (unchanged)"


@pytest.mark.timeout(180)
def test_unchanged_deploy_exits_1_when_an_instance_cannot_come_back(box: OpBox) -> None:
    assert box.pm2("delete", INSTANCES[0]).returncode == 0
    with port_held_by_another_process(SLOT.ports[0]):
        result = box.deploy()
    assert result.returncode == 1, said(result)
    assert "unchanged" in result.stdout
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and HOST in errors[0] and "not healthy" in errors[0], said(result)
    assert history(box)[-1]["result"] == "failed"

    # The port is free again: the same deploy now brings the instance back, exit 0.
    again = box.deploy()
    assert again.returncode == 0, said(again)
    assert all(instance_answers(port) for port in SLOT.ports)


@pytest.mark.timeout(120)
def test_forced_frontend_deploy_starts_a_stopped_instance(box: OpBox) -> None:
    assert box.pm2("stop", INSTANCES[1]).returncode == 0
    result = box.cli("deploy", "frontend", "--yes", "--skip-build", "--force")
    assert result.returncode == 0, said(result)
    assert f"not running: {INSTANCES[1]}" in result.stdout
    assert all(instance_answers(port) for port in SLOT.ports)
    assert box.pm2_apps()[INSTANCES[1]]["status"] == "online"
