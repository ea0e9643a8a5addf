"""Health benchmark: `adapto health`'s wall time beside its slowest single check.

Brings up its own deployed sandbox on 127.0.0.52 (SSH 2351, HTTP 8351,
HTTPS 8451, backends 3351/3352 bound to that address) under a temporary
folder, with tests/operate_sandbox.py, and purges it at the end. Run as root,
from the repository:

    python3 benchmarks/operate_health.py            # 7 runs
    python3 benchmarks/operate_health.py --runs 15

Each run calls ``run_checks`` (what `adapto health` runs, without Python's own
start-up) on the one host. The slowest single check is the longest
``duration_ms`` of that run: for a local check its own request; for an
on-host check the SSH connection plus the one round trip that reads facts and
probes the instances (a check on the host cannot be had for less). Target:
median wall <= 1.5x median slowest check. The whole CLI (`python -m
adapto_ops health`) is timed once more as a reference.

Exit 0 once the figures are printed (1 with --strict on a MISS).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e_support import cli_env  # noqa: E402
from tests.operate_sandbox import ENV, Slot, deployed_sandbox  # noqa: E402

SLOT = Slot("127.0.0.52", 2351, 8351, 8451, (3351, 3352))
TARGET_RATIO = 1.5


def one_run(inventory: Path) -> tuple[float, float, str, dict[str, float]]:
    """(wall ms, slowest check ms, its name, phases) of one run_checks."""
    from adapto_ops.health.run import run_checks
    from adapto_ops.selection import select

    selection = select(str(inventory), ENV)
    started = time.perf_counter()
    results = run_checks(selection)
    wall = (time.perf_counter() - started) * 1000
    bad = [r for r in results if r.status == "fail"]
    if bad:
        raise SystemExit(f"health failed on a fresh sandbox: {bad[0].key}: {bad[0].output}")
    slowest = max(results, key=lambda r: r.duration_ms or 0)
    ssh = next(r for r in results if r.key == "ssh:connect")
    on_host = next(r for r in results if r.key == "pm2:status")
    local = max((r for r in results if r.component in
                 ("certificate", "http", "page", "api", "websocket")),
                key=lambda r: r.duration_ms or 0)
    phases = {"ssh connect": ssh.duration_ms or 0,
              "facts + probes round trip": (on_host.duration_ms or 0) - (ssh.duration_ms or 0),
              "slowest local check": local.duration_ms or 0}
    return wall, slowest.duration_ms or 0, slowest.name, phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--strict", action="store_true", help="exit 1 when the target is missed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adapto-bench-health-") as tmp, \
            deployed_sandbox(Path(tmp), SLOT) as box:
        one_run(box.inventory)  # warm-up: imports, first connection
        runs = [one_run(box.inventory) for _ in range(args.runs)]
        started = time.perf_counter()
        cli = subprocess.run([sys.executable, "-m", "adapto_ops", "health", "-e", ENV, "-i",
                              str(box.inventory)], cwd=REPO, env=cli_env(),
                             capture_output=True, text=True, check=False)
        cli_ms = (time.perf_counter() - started) * 1000
    print(f"{'run':>3}  {'wall ms':>8}  {'slowest ms':>10}  {'ratio':>5}  slowest check")
    for i, (wall, slowest, name, _) in enumerate(runs, 1):
        print(f"{i:>3}  {wall:>8.0f}  {slowest:>10.0f}  {wall / slowest:>5.2f}  {name}")
    wall = statistics.median(r[0] for r in runs)
    slowest = statistics.median(r[1] for r in runs)
    ratio = wall / slowest
    print("\nmedian phases:")
    for phase in runs[0][3]:
        print(f"  {phase:<34} {statistics.median(r[3][phase] for r in runs):>6.0f} ms")
    verdict = "ok" if ratio <= TARGET_RATIO else "MISS"
    print(f"\nhealth wall time (median of {len(runs)}): {wall:.0f} ms; slowest single check "
          f"(median): {slowest:.0f} ms; ratio {ratio:.2f} (target <= {TARGET_RATIO}) {verdict}")
    print(f"whole CLI once (Python start-up included): {cli_ms:.0f} ms, exit {cli.returncode}")
    return 1 if args.strict and verdict == "MISS" else 0


if __name__ == "__main__":
    sys.exit(main())
