"""The secret-leak sweep's figures: how many runs of how many commands, values, files, time.

Runs tests/test_secret_leak_e2e.py (a deployed sandbox on 127.0.0.151, its slot:
do not run both at once; purged at the end) and prints the line it reports, e.g.
`secret-leak sweep: 74 runs of 22 commands, 12 secret values, 7 written files
scanned, 452 s; staged .env seen 68 times`. Exit status: the test's. Run:
    python3 benchmarks/secret_leak.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    """Run the sweep; print its summary line and pytest's."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         "tests/test_secret_leak_e2e.py"],
        cwd=REPO, capture_output=True, text=True, check=False)
    lines = proc.stdout.splitlines()
    shown = [ln for ln in lines if ln.startswith("secret-leak sweep:")] + lines[-1:]
    print("\n".join(shown) if proc.returncode == 0 else proc.stdout[-4000:] + proc.stderr[-2000:])
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
