"""Running `adapto monitor` against an operate sandbox, for the e2e test and the benchmark."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapto_ops.monitor.store import read_rounds
from adapto_ops.render.configs import instance_name
from tests.e2e_support import REPO, cli_env
from tests.fake_telegram import FakeTelegram
from tests.operate_sandbox import ENV, OpBox

TOKEN = "7000001:AAF-monitor-e2e-token"
CHAT = "90001"


def monitor_inventory(box: OpBox, fake: FakeTelegram, **monitor: Any) -> Path:
    """The sandbox's inventory with a monitor section alerting to ``fake``."""
    settings = {"interval_s": 1.0, "failure_threshold": 3, "success_threshold": 2, **monitor,
                "alert": {"channel": "telegram", "telegram_api_base": fake.api_base,
                          "timeout_s": 5.0}}
    return box.write_variant("monitor", lambda env: env.update(monitor=settings))


def secret_env() -> dict[str, str]:
    return {**cli_env(), "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT}


@dataclass
class MonitorRun:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    results: Path

    def rounds(self) -> list[dict[str, Any]]:
        return read_rounds(self.results) if self.results.exists() else []

    def wait_rounds(self, count: int, timeout: float, healthy: bool = False) -> bool:
        """Until ``count`` rounds (all checks passing, if ``healthy``) are in the file."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rounds = self.rounds()
            if healthy:
                rounds = [r for r in rounds if r["status"] != "fail"]
            if len(rounds) >= count:
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.1)
        return False

    def said(self) -> str:
        """The monitor's exit, what failed in its last rounds, and the tail of its output."""
        failing = [f"round {r['round']} ({r['took_ms']:.0f} ms): " + "; ".join(
            f"{c['name']}: {c['output']}" for c in r["checks"] if c["status"] == "fail")
            for r in self.rounds()[-5:]]
        return (f"exit {self.proc.poll()}\n--- last rounds\n" + "\n".join(failing)
                + f"\n--- stdout\n{self.out.read_text()[-2000:]}\n"
                f"--- stderr\n{self.err.read_text()[-2000:]}")


@contextlib.contextmanager
def monitor_running(box: OpBox, inventory: Path, *args: str,
                    name: str = "monitor") -> Iterator[MonitorRun]:
    """`adapto monitor -e op -i INVENTORY ARGS` in the background; SIGTERM at the end."""
    out, err = box.base / f"{name}.out", box.base / f"{name}.err"
    results = box.base / ".adapto" / "monitor" / f"{ENV}.jsonl"
    results.unlink(missing_ok=True)
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "adapto_ops", "monitor", "-e", ENV, "-i", str(inventory),
             *args], cwd=REPO, stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=secret_env())
    run = MonitorRun(proc, out, err, results)
    try:
        yield run
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()


def instances(box: OpBox) -> list[str]:
    """The PM2 names of the backend's instances (not other apps, such as a monitor)."""
    backend = box.data["environments"][ENV]["backend"]
    return [instance_name(backend["name"], port) for port in box.slot.ports]


def stop_backend(box: OpBox) -> tuple[float, float]:
    """Stop every backend instance (PM2 keeps them stopped).

    Returns when `pm2 stop` began and when it returned: the instances die
    somewhere in between, so the two bound the moment of the fault.
    """
    began = time.time()
    stopped = box.pm2("stop", *instances(box))
    assert stopped.returncode == 0, stopped.stderr
    return began, time.time()


def start_backend(box: OpBox) -> None:
    started = box.pm2("start", *instances(box))
    assert started.returncode == 0, started.stderr


def fault_to_alert(box: OpBox, fake: FakeTelegram, run: MonitorRun,
                   timeout: float = 30) -> tuple[float, float]:
    """Seconds from the backend going down to the alert reaching the (fake) Telegram.

    (from `pm2 stop` starting, from it returning): an upper and a lower bound.
    """
    before = len(fake.texts())
    began, done = stop_backend(box)
    assert fake.wait_for(before + 1, timeout), f"no alert in {timeout} s\n{run.said()}"
    at = fake.messages[before].at
    return at - began, at - done
