"""`adapto monitor` against a real sandbox (sshd, nginx, PM2) and a fake Telegram Bot API.

The backend is stopped for real (`pm2 stop`): exactly one alert reaches the
fake Telegram; it comes back: exactly one resolved message.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from adapto_ops.monitor.store import read_rounds
from tests.e2e_support import REPO, adapto, run_to_files, said, sandbox_marks
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
    releases = box.cli("releases", "--json")
    assert releases.returncode == 0, said(releases)
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
        # The module's deploy was moments ago: the alert names it and the way back.
        live = re.search(r"release (\d{14})", alert)
        assert live and live[1] in releases.stdout, alert
        assert f"roll it back: adapto rollback -e {ENV}" in alert
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
        assert telegram.wait_for(2, 90), run.said()
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
    # The alert came on the failure_threshold-th failing round in a row, not later: counted in
    # rounds, not seconds, so a loaded machine (slower rounds) cannot make this flaky.
    alerted = next(i for i, r in enumerate(rounds) if any(e["event"] == "alert"
                                                          for e in r["events"]))
    failing = 0
    for r in reversed(rounds[:alerted + 1]):
        if r["status"] != "fail":
            break
        failing += 1
    assert failing == 3, [r["status"] for r in rounds]


def test_missing_alert_secrets_are_one_line_and_exit_2(box: OpBox,
                                                       telegram: FakeTelegram) -> None:
    inventory = monitor_inventory(box, telegram)
    result = adapto("monitor", "-e", ENV, "-i", str(inventory), "--rounds", "1")
    assert result.returncode == 2, said(result)
    assert "TELEGRAM_BOT_TOKEN" in result.stderr and "Traceback" not in result.stderr
    # Without a channel: --rounds N and one JSON line per round, alerts only in the file.
    quiet = box.write_variant("quiet", lambda env: env.update(monitor={"interval_s": 0.5}))
    rounds = adapto("monitor", "-e", ENV, "-i", str(quiet), "--rounds", "2", "--json")
    assert rounds.returncode == 0, said(rounds)
    lines = [json.loads(line) for line in rounds.stdout.splitlines()]
    assert [line["round"] for line in lines] == [1, 2], rounds.stdout


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


def test_install_runs_the_monitor_as_a_pm2_app_then_uninstall_removes_it(
        box: OpBox, telegram: FakeTelegram) -> None:
    # The "host" is this machine: its Python must import this checkout's adapto.
    python = box.base / "adapto-python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} \"$@\"\n")
    python.chmod(0o755)
    inventory = monitor_inventory(box, telegram, python=str(python), interval_s=1.0)
    env = secret_env()
    dry = run_to_files([sys.executable, "-m", "adapto_ops", "monitor", "install", "-e", ENV,
                        "-i", str(inventory), "--dry-run"], env, 120)
    assert dry.returncode == 0, said(dry)
    assert 'interpreter: "none"' in dry.stdout and "pm2 start" in dry.stdout, dry.stdout
    assert TOKEN not in dry.stdout + dry.stderr
    monitor_dir = box.root / "shared" / "monitor"
    assert not (monitor_dir / "secrets.env").exists()  # a dry run changes nothing

    installed = run_to_files([sys.executable, "-m", "adapto_ops", "monitor", "install", "-e",
                              ENV, "-i", str(inventory)], env, 180)
    name = f"adapto-monitor-{box.data['project']}-{ENV}"
    try:
        assert installed.returncode == 0, said(installed)
        assert "running" in installed.stdout and TOKEN not in installed.stdout + installed.stderr
        assert box.pm2_apps()[name]["status"] == "online"
        secrets = monitor_dir / "secrets.env"
        assert secrets.stat().st_mode & 0o777 == 0o600
        names = {line.split("=", 1)[0] for line in secrets.read_text().splitlines()}
        assert names == {"TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID",
                         box.data["environments"][ENV]["health"]["probe_token"]}
        results = monitor_dir / f"{ENV}.jsonl"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(read_rounds(results)) < 3:
            time.sleep(0.5)
        rounds = read_rounds(results)
        assert len(rounds) >= 3 and rounds[-1]["status"] != "fail", rounds[-1:]
    finally:
        removed = box.cli("monitor", "uninstall", timeout=120)
    assert removed.returncode == 0, said(removed)
    assert name not in box.pm2_apps()
    assert not (monitor_dir / "secrets.env").exists()
