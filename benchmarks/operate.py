"""The operate figures of issue 7, one script: runs each part and prints what it measured.

    python3 benchmarks/operate.py            # all parts
    python3 benchmarks/operate.py recover    # one part: health | recover | monitor

- health:  the health wall time beside the slowest single check (target <= 1.5x);
- recover: time to healthy for each fault, failed requests during `recover backend`
           under load (target 0);
- monitor: the monitor's time from fault to alert.

Each part brings up a sandbox of its own on its own loopback address and purges
it afterwards; only loopback is contacted.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = {
    "health": HERE / "operate_health.py",
    "recover": HERE / "operate_recover.py",
    "monitor": HERE / "operate_monitor.py",
}


def main(argv: list[str]) -> int:
    wanted = argv or list(PARTS)
    unknown = [w for w in wanted if w not in PARTS]
    if unknown:
        print(f"error: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}",
              file=sys.stderr)
        return 2
    failed = 0
    for name in wanted:
        print(f"\n=== {name} ({PARTS[name].name}) ===", flush=True)
        started = time.perf_counter()
        code = subprocess.run([sys.executable, str(PARTS[name])], check=False).returncode
        print(f"--- {name}: exit {code}, {time.perf_counter() - started:.0f} s", flush=True)
        failed |= code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
