"""Recover benchmark: time to healthy after each fault; failed requests during `recover backend`.

Brings up its own one-host sandbox on 127.0.0.65 (SSH 2365, HTTPS 8465,
backends on 3365/3366) under /var/tmp/adapto-bench-recover-<pid>, with the
reference backend deployed (tests/operate_sandbox.py), and always purges it
at the end. Nothing here touches the developer sandbox (127.0.0.2) or the
test suite's slots. Run as root, from the repository:

    python3 benchmarks/operate_recover.py            # 3 runs per fault, median printed
    python3 benchmarks/operate_recover.py --quick    # 1 run per fault

Each fault is injected for real, then `adapto recover ...` runs at once (a
fresh CLI process, nobody at the terminal). "Time to healthy" is from the
fault in place to the end of that command, which must exit 0; after it, an
independent check (PM2 status, each instance on its own port, /api/health
and / through nginx over HTTPS) must pass too. After a SIGKILL, PM2 may have
restarted the instances itself before recover looks (then recover only
checks); runs follow each other, so a kill within PM2's min_uptime (10 s) of
the previous run's restart is a crash loop to recover, which replaces them.
Figures depend on the machine's load (printed at the start). A fault adapto must not heal
(another process on a backend port) is timed to the exit-1 report instead.

Under load: 16 TLS connections at 300 requests/s in total load
https://127.0.0.65:8465/api/health through nginx (benchmarks/_load.py) from
1 s before `recover backend` (one instance stopped with `pm2 stop`) until 1 s
after it. Failed = any status but 200 or any transport error. Target: 0.
nginx's per-address API limit is raised in this sandbox: all load comes
from one client address.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import LoadRunner  # noqa: E402

from tests.operate_sandbox import SERVER_NAME, OpBox, Slot, deployed_sandbox  # noqa: E402

SLOT = Slot("127.0.0.65", 2365, 8365, 8465, (3365, 3366))
BACKEND = "ai-platform-backend"
NAMES = [f"{BACKEND}-{port}" for port in SLOT.ports]


def unlimited_api(env: dict[str, Any]) -> None:
    env["nginx"]["rate_limits"] = {"api": {"rate": "10000r/s", "burst": 10000},
                                   "auth": {"rate": "5r/m", "burst": 10}}


def healthy(box: OpBox) -> bool:
    """The independent check: PM2, both instances, /api/health and / through nginx."""
    import httpx

    try:
        apps = box.pm2_apps()
        if any(apps.get(n, {}).get("status") != "online" for n in NAMES):
            return False
        for port in SLOT.ports:
            if httpx.get(f"http://{SLOT.address}:{port}/api/health", timeout=5,
                         trust_env=False).status_code != 200:
                return False
        return box.get("/api/health").status_code == 200 and box.get("/").status_code == 200
    except (httpx.HTTPError, StopIteration, OSError):
        return False


# --- faults: each reads what it needs first and returns the injection itself ---------
# (so that reading PM2's list, ~1 s of node, is not counted as time to healthy)

Inject = Callable[[], None]


def _kill(pids: list[int]) -> Inject:
    def inject() -> None:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

    return inject


def kill_instances(box: OpBox) -> Inject:
    return _kill([app["pid"] for app in box.pm2_apps().values()])


def stop_instances(box: OpBox) -> Inject:
    def inject() -> None:
        box.pm2("stop", *NAMES)

    return inject


def kill_pm2_daemon(box: OpBox) -> Inject:
    daemon = box.pm2_daemon_pid()
    return _kill([pid for pid in [daemon, *(a["pid"] for a in box.pm2_apps().values())] if pid])


def kill_nginx(box: OpBox) -> Inject:
    master = box.nginx_pid()
    workers = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True,
                             check=False).stdout.split()
    return _kill([int(pid) for pid in [master, *workers] if pid])


def break_site(box: OpBox) -> Inject:
    def inject() -> None:
        with box.site_config.open("a") as handle:
            handle.write("\nthis is not nginx;\n")

    return inject


FAULTS: list[tuple[str, str, Callable[[OpBox], Inject]]] = [
    ("every instance SIGKILLed", "backend", kill_instances),
    ("every instance stopped (pm2 stop)", "backend", stop_instances),
    ("PM2 daemon + its apps SIGKILLed", "backend", kill_pm2_daemon),
    ("nginx master + workers SIGKILLed", "nginx", kill_nginx),
    ("broken nginx site config in place", "nginx", break_site),
]


def time_to_healthy(box: OpBox, what: str, fault: Callable[[OpBox], Inject]) -> float:
    inject = fault(box)
    inject()
    started = time.perf_counter()  # from the fault in place (a `pm2 stop` takes ~1 s itself)
    result = box.cli("recover", what, timeout=180)
    took = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"recover {what} exited {result.returncode}: {result.stderr.strip()}")
    if not healthy(box):
        raise RuntimeError(f"recover {what} said healthy, the independent check disagrees")
    return took


def port_held(box: OpBox) -> float:
    """Another program on a backend port: timed to recover's exit-1 report, then undone."""
    box.pm2("stop", NAMES[1])
    holder = subprocess.Popen([sys.executable, "-c", (
        "import socket\ns = socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
        f"s.bind(({SLOT.address!r}, {SLOT.ports[1]}))\ns.listen()\n"
        "while True:\n    s.accept()[0].close()\n")])
    try:
        time.sleep(0.3)
        started = time.perf_counter()
        result = box.cli("recover", "backend", timeout=180)
        took = time.perf_counter() - started
        if result.returncode != 1 or f"pid {holder.pid}" not in result.stderr:
            raise RuntimeError(f"port held: expected exit 1 naming pid {holder.pid}, got "
                               f"{result.returncode}: {result.stderr.strip()}")
    finally:
        holder.kill()
        holder.wait()
    box.cli("recover", "backend", timeout=180)
    return took


def under_load(box: OpBox) -> tuple[float, int, int, str]:
    """One instance stopped; `recover backend` under load. (seconds, failed, total, kinds)."""
    box.pm2("stop", NAMES[1])
    runner = LoadRunner(box.url("/api/health"), SERVER_NAME, label="recover backend",
                        connections=16, rate=300.0, max_seconds=60).start()
    try:
        time.sleep(1.0)
        started = time.perf_counter()
        result = box.cli("recover", "backend", timeout=180)
        took = time.perf_counter() - started
        time.sleep(1.0)
    finally:
        load = runner.stop()
    if result.returncode != 0 or not healthy(box):
        raise RuntimeError(f"recover backend under load exited {result.returncode}")
    return took, load.failed, load.total, load.kinds()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run per fault")
    args = parser.parse_args()
    runs = 1 if args.quick else 3
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    base = Path(tempfile.mkdtemp(prefix=f"adapto-bench-recover-{os.getpid()}-", dir="/var/tmp"))
    print(f"adapto recover benchmark: one sandbox host on {SLOT.address} "
          f"(ssh :{SLOT.ssh_port}, https :{SLOT.https_port}), {runs} run(s) per fault, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    try:
        with deployed_sandbox(base, SLOT, adjust=unlimited_api) as box:
            print(f"\n{'fault':<40} {'recover':<8} {'time to healthy (s)':<22} runs")
            for label, what, fault in FAULTS:
                times = [time_to_healthy(box, what, fault) for _ in range(runs)]
                print(f"{label:<40} {what:<8} {statistics.median(times):<22.2f} "
                      + " / ".join(f"{t:.2f}" for t in times), flush=True)
            held = [port_held(box) for _ in range(runs)]
            print(f"{'backend port held by another process':<40} {'backend':<8} "
                  f"{'reported (exit 1) in ' + format(statistics.median(held), '.2f'):<22} "
                  + " / ".join(f"{t:.2f}" for t in held), flush=True)
            print("\nfailed requests through nginx during `recover backend` "
                  "(one instance stopped), target 0:")
            worst = 0
            for run in range(runs):
                took, failed, total, kinds = under_load(box)
                worst = max(worst, failed)
                print(f"  run {run + 1}: {failed} failed of {total} "
                      f"(recover {took:.2f} s; failures: {kinds})", flush=True)
            print(f"  {'OK' if worst == 0 else 'MISS'}: at most {worst} failed", flush=True)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
