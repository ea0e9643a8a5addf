"""`adapto logs` against a real sandbox: snapshot wall time, a --grep through a big file,
follow latency, and whether any remote tail outlives a follow.

Brings up a deployed one-host sandbox on 127.0.0.71 (the slot of
tests/test_logs_e2e.py: do not run both at once), purged at the end. Run:
    python3 benchmarks/logs.py [--runs 5] [--big-mb 20] [--follow-lines 20]
"""

from __future__ import annotations

import argparse
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _report import timed_cli  # noqa: E402

from tests.e2e_support import cli_env  # noqa: E402
from tests.operate_sandbox import ENV, OpBox, Slot, deployed_sandbox  # noqa: E402

SLOT = Slot("127.0.0.71", 2371, 8371, 8471, (3371, 3372))


def stamp(text: str) -> str:
    return f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} +00:00: {text}\n"


def wall(box: OpBox, *args: str) -> float:
    return timed_cli(box.cli, *args)


def follow_latency(box: OpBox, log: Path, lines: int) -> tuple[list[float], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapto_ops", "logs", "backend", "--instance",
         str(SLOT.ports[0]), "-f", "-n", "0", "-e", ENV, "-i", str(box.inventory)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
    seen: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [seen.put(line) for line in proc.stdout],  # type: ignore[union-attr]
                     daemon=True).start()
    time.sleep(3)  # connected and following
    samples = []
    for i in range(lines):
        started = time.perf_counter()
        with log.open("a") as handle:
            handle.write(stamp(f"bench-follow-{i}"))
        while f"bench-follow-{i}" not in seen.get(timeout=10):
            pass
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=15)
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-af", str(log)], capture_output=True, text=True).stdout
    return samples, left


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big-mb", type=int, default=20)
    parser.add_argument("--follow-lines", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adapto-bench-logs-") as tmp, \
            deployed_sandbox(Path(tmp), SLOT) as box:
        log = box.log_dir / f"ai-platform-backend-{SLOT.ports[0]}-out.log"
        with log.open("a") as handle:
            handle.writelines(stamp(f"line {i}") for i in range(200))
        baseline = sorted(wall(box, "releases") for _ in range(args.runs))
        print(f"baseline: adapto releases (start-up, SSH login, one read), wall: median "
              f"{statistics.median(baseline):.2f}s")
        snapshot = sorted(wall(box, "logs", "backend") for _ in range(args.runs))
        print(f"logs backend (4 files, 100 lines each), wall: median "
              f"{statistics.median(snapshot):.2f}s, min {snapshot[0]:.2f}s ({args.runs} runs)")

        with log.open("a") as handle:
            handle.write(stamp("RARE-NEEDLE"))
            filler = stamp("filler " + "x" * 200)
            handle.writelines(filler for _ in range(args.big_mb * 1024 * 1024 // len(filler)))
        size_mb = log.stat().st_size / 1e6
        grep = sorted(wall(box, "logs", "backend", "--instance", str(SLOT.ports[0]), "--grep",
                           "RARE-NEEDLE", "-n", "1") for _ in range(args.runs))
        print(f"logs --grep, one match at the start of a {size_mb:.0f} MB file, wall: median "
              f"{statistics.median(grep):.2f}s ({args.runs} runs)")
        plain = sorted(wall(box, "logs", "backend", "--instance", str(SLOT.ports[0]))
                       for _ in range(args.runs))
        print(f"logs backend --instance (same {size_mb:.0f} MB file, no filter), wall: median "
              f"{statistics.median(plain):.2f}s")

        samples, left = follow_latency(box, log, args.follow_lines)
        samples.sort()
        print(f"logs --follow, append to printed: median {statistics.median(samples):.1f} ms, "
              f"max {samples[-1]:.1f} ms ({len(samples)} lines)")
        print(f"remote tails left after Ctrl-C: {len(left.splitlines())}")


if __name__ == "__main__":
    main()
