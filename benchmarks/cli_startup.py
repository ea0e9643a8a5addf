"""Start-up time of `adapto --help` beside a bare interpreter (`python -c pass`).

Target (issue 3): median <= 150 ms on the 2-core machine. Run:
    python3 benchmarks/cli_startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def median_ms(argv: list[str], runs: int) -> tuple[float, float]:
    """Median and 90th percentile wall time of ``argv`` over ``runs`` runs (after one warm-up)."""
    subprocess.run(argv, check=True, capture_output=True)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -m adapto_ops --help": [sys.executable, "-m", "adapto_ops", "--help"],
    }
    script = shutil.which("adapto")
    if script:
        cases["adapto --help"] = [script, "--help"]
    print(f"{'command':<32} {'median ms':>10} {'p90 ms':>8}   ({args.runs} runs)")
    for name, argv in cases.items():
        median, p90 = median_ms(argv, args.runs)
        print(f"{name:<32} {median:>10.1f} {p90:>8.1f}")


if __name__ == "__main__":
    main()
