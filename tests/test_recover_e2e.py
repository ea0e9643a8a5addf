"""`adapto recover backend|nginx` against real faults on a real sandbox (sshd, nginx, PM2).

One sandbox for the module on its own loopback slot (127.0.0.61). Each test
injects a fault for real (SIGKILL, `pm2 stop`, a killed PM2 daemon, a broken
config written in place, a port taken by another process), runs `recover`
with nobody at the terminal, and checks the exit code, what recover said it
did and the state it left: healthy, or clearly reported where healing is not
adapto's to do. Every test leaves the sandbox healthy for the next.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e_support import SECRET, Cli, adapto, said, sandbox_marks
from tests.operate_sandbox import ENV, SERVER_NAME, OpBox, Slot, deployed_sandbox

pytestmark = [pytest.mark.e2e, *sandbox_marks()]

SLOT = Slot("127.0.0.61", 2361, 8361, 8461, (3361, 3362))
BACKEND = "ai-platform-backend"
FIRST, SECOND = (f"{BACKEND}-{port}" for port in SLOT.ports)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpBox]:
    with deployed_sandbox(tmp_path_factory.mktemp("recover"), SLOT,
                          adjust=unlimited_api) as sandbox:
        yield sandbox


def unlimited_api(env: dict[str, Any]) -> None:
    """All test load comes from one address: nginx's per-address API limit would answer 429."""
    env["nginx"]["rate_limits"] = {"api": {"rate": "10000r/s", "burst": 10000},
                                   "auth": {"rate": "5r/m", "burst": 10}}


@pytest.fixture(autouse=True)
def healthy_after(box: OpBox) -> Iterator[None]:
    """Each test starts from, and must leave, a healthy sandbox."""
    yield
    assert_healthy(box)


# --- helpers ------------------------------------------------------------------------


def recover(box: OpBox, what: str, *extra: str) -> Cli:
    return box.cli("recover", what, *extra, timeout=120)


def assert_healthy(box: OpBox) -> None:
    apps = box.pm2_apps()
    assert {apps[FIRST]["status"], apps[SECOND]["status"]} == {"online"}, apps
    for port in SLOT.ports:
        direct = httpx.get(f"http://{SLOT.address}:{port}/api/health", timeout=5,
                           trust_env=False)
        assert direct.status_code == 200, (port, direct.text)
    assert box.get("/api/health").status_code == 200
    assert box.get("/").status_code == 200


def app_pids(box: OpBox) -> dict[str, int]:
    return {name: app["pid"] for name, app in box.pm2_apps().items()}


def kill_nginx(box: OpBox) -> int:
    """SIGKILL this sandbox's nginx master and its workers (no one else's)."""
    master = box.nginx_pid()
    assert master is not None
    workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True,
                             check=False).stdout.split()
    for pid in [master, *map(int, workers)]:
        os.kill(pid, signal.SIGKILL)
    return master


def secret_value(box: OpBox) -> str:
    for line in (box.base / ".adapto" / "secrets.env").read_text().splitlines():
        if line.startswith(f"{SECRET}="):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise AssertionError("the sandbox has no secret value")


class Load:
    """GETs of /api/health through nginx over HTTPS from a few threads, counting failures."""

    def __init__(self, box: OpBox, threads: int = 6) -> None:
        self.url, self.threads = box.url("/api/health"), threads
        self.total = self.failed = 0
        self.kinds: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(30)

    def _run(self) -> None:
        with httpx.Client(verify=False, trust_env=False, timeout=10,
                          headers={"Host": SERVER_NAME}) as client:
            while not self._stop.is_set():
                kind = ""
                try:
                    response = client.get(self.url)
                    if response.status_code != 200:
                        kind = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    kind = type(exc).__name__
                with self._lock:
                    self.total += 1
                    if kind:
                        self.failed += 1
                        self.kinds.append(kind)
                time.sleep(0.05)  # ~20 requests/s per thread


# --- a healthy system -----------------------------------------------------------------


def test_healthy_system_nothing_to_do(box: OpBox) -> None:
    pids, nginx = app_pids(box), box.nginx_pid()
    for what in ("backend", "nginx"):
        result = recover(box, what)
        assert result.returncode == 0, said(result)
        assert "nothing to do" in result.stdout, said(result)
        assert result.stderr == "", said(result)
    assert app_pids(box) == pids and box.nginx_pid() == nginx


def test_bad_input_is_one_line_exit_2(box: OpBox) -> None:
    cases = [(("recover", "redis"), "unknown target 'redis'"),
             (("recover", "backend", "--host", "nowhere"), "has no host 'nowhere'")]
    for args, words in cases:
        result = box.cli(*args)
        assert result.returncode == 2, said(result)
        assert result.stderr.count("\n") == 1 and words in result.stderr, said(result)
    other_env = adapto("recover", "nginx", "-e", "nope", "-i", str(box.inventory))
    assert other_env.returncode == 2 and "no environment 'nope'" in other_env.stderr


def test_unreachable_host_is_one_line_exit_1(box: OpBox) -> None:
    def elsewhere(env: dict[str, Any]) -> None:
        env["hosts"][0]["port"] = 2399  # nothing listens there

    path = box.write_variant("unreachable", elsewhere)
    result = adapto("recover", "backend", "-e", ENV, "-i", str(path), timeout=60)
    assert result.returncode == 1, said(result)
    assert result.stderr.count("\n") == 1 and "unreachable" in result.stderr, said(result)


def test_a_deploy_holding_the_lock_is_waited_for_not_raced(box: OpBox) -> None:
    """A deploy in progress (its lock, from another machine) makes recover stop at once."""
    assert box.pm2("stop", SECOND).returncode == 0
    lock = box.root / ".adapto" / "lock"
    lock.write_text(json.dumps({"who": "ci@elsewhere", "pid": 4242, "since": "2026-11-30T10:00:00Z",
                                "command": "deploy all", "token": "t0k3n"}))
    try:
        result = recover(box, "backend")
        assert result.returncode == 1, said(result)
        assert result.stderr.count("\n") == 1, said(result)
        assert "locked by ci@elsewhere" in result.stderr and "deploy all" in result.stderr
        assert box.pm2_apps()[SECOND]["status"] == "stopped"  # nothing was done
        assert lock.exists()  # and the deploy's lock is left alone
        broken = recover(box, "backend", "--break-lock")
        assert broken.returncode == 0, said(broken)
        assert not lock.exists()
    finally:
        lock.unlink(missing_ok=True)


# --- backend faults -------------------------------------------------------------------


def test_every_instance_sigkilled(box: OpBox) -> None:
    before = app_pids(box)
    for pid in before.values():
        os.kill(pid, signal.SIGKILL)
    result = recover(box, "backend")  # at once: PM2 may or may not have restarted them yet
    assert result.returncode == 0, said(result)
    # Either PM2 had brought them back (its restart count says so) or recover restarted them.
    for name in (FIRST, SECOND):
        assert re.search(rf"{name} online \(\d+ restarts\)|did: restart {name}",
                         result.stdout), said(result)
    assert "healthy" in result.stdout and result.stderr == ""
    assert not set(app_pids(box).values()) & set(before.values())


def test_instances_pm2_cannot_restart_are_restarted(box: OpBox) -> None:
    assert box.pm2("stop", FIRST, SECOND).returncode == 0
    result = recover(box, "backend")
    assert result.returncode == 0, said(result)
    assert f"did: restart {FIRST} (PM2 status stopped)" in result.stdout, said(result)
    assert f"did: restart {SECOND} (PM2 status stopped)" in result.stdout, said(result)


def test_one_instance_down_under_load_no_failed_request(box: OpBox) -> None:
    kept = app_pids(box)[FIRST]
    assert box.pm2("stop", SECOND).returncode == 0
    with Load(box) as load:
        time.sleep(0.5)
        result = recover(box, "backend")
        time.sleep(0.5)
    assert result.returncode == 0, said(result)
    assert f"did: restart {SECOND}" in result.stdout, said(result)
    assert f"restart {FIRST}" not in result.stdout, "only the failing instance is restarted"
    assert app_pids(box)[FIRST] == kept
    assert load.total >= 200, f"only {load.total} requests ran"
    assert load.failed == 0, f"{load.failed}/{load.total} failed: {load.kinds[:5]}"


def test_pm2_daemon_killed_with_its_apps(box: OpBox) -> None:
    daemon = box.pm2_daemon_pid()
    assert daemon is not None
    apps = list(app_pids(box).values())
    for pid in [daemon, *apps]:
        os.kill(pid, signal.SIGKILL)  # what a reboot without `pm2 startup` leaves
    # At once: the killed daemon is still a zombie, which must not count as running.
    result = recover(box, "backend")
    assert result.returncode == 0, said(result)
    assert "PM2 daemon gone" in result.stdout, said(result)
    assert re.search(r"did: start .*ecosystem\.config\.js \(the PM2 daemon was gone\)",
                     result.stdout.replace("\n", " ")), said(result)
    assert box.pm2_daemon_pid() not in (None, daemon)


def test_port_held_by_another_process_is_named_not_killed(box: OpBox) -> None:
    assert box.pm2("stop", SECOND).returncode == 0
    # Accepts and closes every connection: nginx passes over it to the other instance.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import socket\ns = socket.socket()\n"
         "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
         f"s.bind(({SLOT.address!r}, {SLOT.ports[1]}))\ns.listen()\n"
         "while True:\n    s.accept()[0].close()\n"])
    try:
        time.sleep(0.5)
        result = recover(box, "backend")
        assert result.returncode == 1, said(result)
        lines = result.stderr.splitlines()
        assert lines == [f"error: sandbox1: {SECOND}: port {SLOT.ports[1]} is held by pid "
                         f"{holder.pid} ({lines[0].split('(', 1)[1]}"], said(result)
        assert "python" in lines[0] and "not by PM2" in lines[0], said(result)
        assert holder.poll() is None, "recover must not kill another program"
        assert f"restart {SECOND}" not in result.stdout, said(result)
        assert box.get("/api/health").status_code == 200  # the other instance serves
        assert httpx.get(f"http://{SLOT.address}:{SLOT.ports[0]}/api/health",
                         trust_env=False).status_code == 200
    finally:
        holder.kill()
        holder.wait()
    again = recover(box, "backend")
    assert again.returncode == 0 and f"did: restart {SECOND}" in again.stdout, said(again)


def test_instance_still_failing_shows_its_logs_masked(box: OpBox) -> None:
    crash = box.root / "current" / "backend" / "CRASH_ON_START"
    secret = secret_value(box)
    # A newest out log holding the secret, as a backend that logs its config would write.
    leaked = box.log_dir / f"{SECOND}-out-999.log"
    leaked.write_text(f"starting with SUPABASE_ANON_KEY={secret}\n")
    future = time.time() + 3600
    os.utime(leaked, (future, future))

    def quick(env: dict[str, Any]) -> None:
        env["health"]["instance_start_timeout_s"] = 4.0

    fast = box.write_variant("quick-start", quick)
    assert box.pm2("stop", SECOND).returncode == 0
    crash.write_text("")
    try:
        result = adapto("recover", "backend", "-e", ENV, "-i", str(fast), timeout=120)
        assert result.returncode == 1, said(result)
        assert f"last 50 log lines of {SECOND}" in result.stdout, said(result)
        assert "CRASH_ON_START is present: refusing to start" in result.stdout, said(result)
        assert "SUPABASE_ANON_KEY=****" in result.stdout, said(result)
        assert secret not in result.stdout + result.stderr
        assert f"error: sandbox1: {SECOND}:" in result.stderr, said(result)
    finally:
        crash.unlink()
        leaked.unlink()
    again = recover(box, "backend")
    assert again.returncode == 0, said(again)


def test_dry_run_changes_nothing_and_prints_the_commands(box: OpBox) -> None:
    assert box.pm2("stop", SECOND).returncode == 0
    pids = app_pids(box)
    result = recover(box, "backend", "--dry-run")
    assert result.returncode == 0, said(result)
    assert "pm2 start " in result.stdout and f"--only {SECOND}" in result.stdout, said(result)
    assert "nothing was changed" in result.stdout
    assert box.pm2_apps()[SECOND]["status"] == "stopped" and app_pids(box) == pids
    real = recover(box, "backend")
    assert real.returncode == 0, said(real)


# --- nginx faults -------------------------------------------------------------------


def test_nginx_killed_is_started(box: OpBox) -> None:
    old = kill_nginx(box)
    time.sleep(0.2)
    result = recover(box, "nginx", "--json")  # as a pipeline (or the monitor) reads it
    assert result.returncode == 0, said(result)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    final = events[-1]
    assert final["kind"] == "result" and final["message"] == "healthy", said(result)
    (host,) = final["data"]["hosts"]
    assert host["actions"] == ["nginx start"] and host["still_failing"] == [], host
    assert f"nginx runs (master pid {box.nginx_pid()})" in host["now"], host
    assert box.nginx_pid() not in (None, old)


def test_broken_site_config_is_replaced_by_the_last_good_one(box: OpBox) -> None:
    site = box.site_config
    good = (box.root / "current" / "nginx-site.conf").read_text()
    master = box.nginx_pid()
    with site.open("a") as handle:  # written in place, as a hand edit would be
        handle.write("\nthis is not nginx;\n")
    dry = recover(box, "nginx", "--dry-run")
    assert dry.returncode == 0 and "this is not nginx" in site.read_text(), said(dry)
    result = recover(box, "nginx")
    assert result.returncode == 0, said(result)
    assert re.search(r'nginx -t\s+unknown directive "this" in \S+sandbox\.conf:\d+',
                     result.stdout), said(result)
    assert "did: restore the site config from" in result.stdout, said(result)
    assert "did: nginx reload" in result.stdout, said(result)
    assert site.read_text() == good
    assert "this is not nginx" in (box.root / ".adapto" / "rejected-nginx-site.conf").read_text()
    assert box.nginx_pid() == master  # reloaded, not restarted


def test_broken_main_config_is_reported_not_touched(box: OpBox) -> None:
    main = box.sdir / "nginx" / "conf" / "nginx.conf"
    original, site = main.read_text(), box.site_config.read_text()
    main.write_text(original + "\nbogus_directive on;\n")
    try:
        result = recover(box, "nginx")
        assert result.returncode == 1, said(result)
        assert result.stderr.splitlines() == [
            f"error: sandbox1: nginx -t fails in {main}, which adapto does not install; fix it "
            f'by hand: unknown directive "bogus_directive" in {main}:'
            + result.stderr.rsplit(":", 1)[1].strip()], said(result)
        assert "did:" not in result.stdout, said(result)
        assert box.site_config.read_text() == site
        assert main.read_text().endswith("bogus_directive on;\n")
    finally:
        main.write_text(original)


def test_recover_help_has_an_example() -> None:
    result = adapto("recover", "--help")
    assert result.returncode == 0 and "Example: adapto recover backend -e sandbox" in result.stdout
