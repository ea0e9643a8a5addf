"""`adapto monitor` against a real sandbox (sshd, nginx, PM2) and a fake Telegram Bot API.

The backend is stopped for real (`pm2 stop`): exactly one alert reaches the
fake Telegram; it comes back: exactly one resolved message.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e_support import adapto, said, sandbox_marks
from tests.fake_telegram import FakeTelegram
from tests.monitor_support import (
    CHAT,
    TOKEN,
    monitor_inventory,
    monitor_running,
    secret_env,
    start_backend,
    stop_backend,
)
from tests.operate_sandbox import ENV, OpBox, Slot, deployed_sandbox

pytestmark = [pytest.mark.e2e, *sandbox_marks()]

SLOT = Slot("127.0.0.81", 2381, 8381, 8481, (3381, 3382))


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("monitor"), SLOT) as deployed:
        yield deployed


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram(TOKEN, CHAT).start()
    yield fake
    fake.stop()


def once(box: OpBox, inventory: Path) -> tuple[int, dict[str, object], str]:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "adapto_ops", "monitor", "-e", ENV, "-i",
                           str(inventory), "--once", "--json"], capture_output=True, text=True,
                          env=secret_env(), timeout=120, check=False)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("{")), "{}")
    return proc.returncode, json.loads(line), proc.stdout + proc.stderr


def test_a_stopped_backend_gives_one_alert_and_one_resolved_message(
        box: OpBox, telegram: FakeTelegram) -> None:
    inventory = monitor_inventory(box, telegram)
    code, healthy, output = once(box, inventory)
    assert code == 0, output
    names = {c["name"] for c in healthy["checks"]}
    assert {"api", f"instance :{SLOT.ports[0]}"} <= names, names
    with monitor_running(box, inventory, "--interval", "1", "--json",
                         "--metrics", f"{SLOT.address}:0") as run:
        assert run.wait_rounds(2, 60, healthy=True), run.said()
        assert telegram.texts() == []
        fault_at, _ = stop_backend(box)
        assert telegram.wait_for(1, 30), run.said()
        to_alert = telegram.messages[0].at - fault_at
        print(f"\ntime from fault to alert: {to_alert:.2f} s")
        alert = telegram.texts()[0]
        assert alert.startswith(f"ALERT {ENV}: sandbox1"), alert
        assert f"adapto recover backend -e {ENV}" in alert
        assert TOKEN not in run.out.read_text() + run.err.read_text()
        # While it is down: --once fails, and the metrics say so.
        code, down, output = once(box, inventory)
        assert code == 1 and down["status"] == "fail", output
        port = re.search(r"metrics: http://[0-9.]+:(\d+)/metrics", run.err.read_text())
        assert port, run.said()
        metrics = httpx.get(f"http://{SLOT.address}:{port[1]}/metrics", trust_env=False).text
        assert re.search(r'adapto_check_up\{check="api:responseTime",env="op",'
                         r'host="sandbox1"\} 0\.0', metrics), metrics
        assert 'adapto_incidents_open{env="op"} 1.0' in metrics
        time.sleep(3)  # more failing rounds: still one alert
        assert len(telegram.texts()) == 1
        start_backend(box)
        assert telegram.wait_for(2, 60), run.said()
        time.sleep(3)  # healthy rounds after the resolution: nothing more
        texts = telegram.texts()
    assert len(texts) == 2, texts
    assert texts[1].startswith(f"RESOLVED {ENV}: sandbox1"), texts
    assert run.proc.returncode == 0, run.said()  # SIGTERM ends it cleanly
    rounds = run.rounds()
    events = [e["event"] for r in rounds for e in r["events"]]
    assert events == ["alert", "resolved"], events
    assert all({"api", "instance-3381"} <= {c["component"].split(":")[0] for c in r["checks"]}
               for r in rounds), rounds[0]["checks"]
    assert to_alert < 10, f"{to_alert:.1f} s from fault to alert"


def test_a_failure_right_after_a_deploy_names_the_release(
        box: OpBox, telegram: FakeTelegram) -> None:
    releases = box.cli("releases", "--json")
    assert releases.returncode == 0, said(releases)
    inventory = monitor_inventory(box, telegram, failure_threshold=2)
    with monitor_running(box, inventory, "--interval", "1", "--json") as run:
        assert run.wait_rounds(1, 60, healthy=True), run.said()
        stop_backend(box)
        try:
            assert telegram.wait_for(1, 30), run.said()
        finally:
            start_backend(box)
        assert telegram.wait_for(2, 60), run.said()
    alert = telegram.texts()[0]
    live = re.search(r"release (\d{14})", alert)
    assert live, alert
    assert live[1] in releases.stdout
    assert f"roll it back: adapto rollback -e {ENV}" in alert


def test_missing_alert_secrets_are_one_line_and_exit_2(box: OpBox,
                                                       telegram: FakeTelegram) -> None:
    inventory = monitor_inventory(box, telegram)
    result = adapto("monitor", "-e", ENV, "-i", str(inventory), "--once")
    assert result.returncode == 2, said(result)
    assert "TELEGRAM_BOT_TOKEN" in result.stderr and "Traceback" not in result.stderr


def test_auto_recover_brings_the_backend_back_once(box: OpBox, telegram: FakeTelegram) -> None:
    inventory = monitor_inventory(box, telegram)
    with monitor_running(box, inventory, "--interval", "1", "--json", "--auto-recover") as run:
        assert run.wait_rounds(1, 60, healthy=True), run.said()
        stop_backend(box)
        try:
            assert telegram.wait_for(2, 90), run.said()
        finally:
            if len(telegram.texts()) < 2:
                start_backend(box)
        time.sleep(2)
    texts = telegram.texts()
    assert len(texts) == 2, texts
    assert f"auto-recover: adapto recover backend -e {ENV}" in texts[0]
    assert "auto-recover: backend ended healthy" in texts[1], texts[1]
    recovers = [e for r in run.rounds() for e in r["events"] if e["event"] == "recover"]
    assert [(e["what"], e["healthy"]) for e in recovers] == [("backend", True)], recovers
    assert all(a["status"] == "online" for a in box.pm2_apps().values())
