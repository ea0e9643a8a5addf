"""`adapto ssl` figures against Debian's pebble on loopback: ACME issue time and failed
requests across a forced renewal.

Brings up pebble (+ pebble-challtestsrv) on 127.0.0.142 and a deployed one-host sandbox
on 127.0.0.141 (the slot of tests/test_ssl_e2e.py: do not run both at once), then:

- ``adapto ssl issue`` once (first issue: account, order, http-01 through nginx), and
  ``--force`` ``--runs`` times (a new order validated each time: pebble reuses no
  authorization here);
- ``adapto ssl renew --force-renewal`` ``--runs`` times under load: GET /api/health and
  POST /api/echo on 8 TLS connections (certificate verified against pebble's root),
  bounded by time and request count; counts requests and failures.

Times are the CLI's wall time (start-up and SSH login included). Run as root:

    python3 benchmarks/acme.py [--runs 3]
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
from tests.operate_sandbox import ENV, deployed_sandbox  # noqa: E402
from tests.pebble_support import SLOT, Load, Pebble, letsencrypt  # noqa: E402


def adapto(inventory: Path, *args: str) -> float:
    """Wall time of one `adapto ARGS`; exits if it fails."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "adapto_ops", *args, "-e", ENV, "-i",
                             str(inventory), "--yes"], cwd=REPO, env=cli_env(),
                            capture_output=True, text=True, timeout=600, check=False)
    took = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"adapto {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--load-seconds", type=float, default=40.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="adapto-bench-ssl-") as tmp:
        base = Path(tmp)
        (base / "pebble").mkdir()
        pebble = Pebble(base / "pebble", SLOT.http_port)
        try:
            with deployed_sandbox(base / "box", SLOT) as box:
                inventory = letsencrypt(box, pebble)
                first = adapto(inventory, "ssl", "issue")
                forced = [adapto(inventory, "ssl", "issue", "--force") for _ in range(args.runs)]
                print(f"ACME issue, first: {first:.2f} s; --force, median of {args.runs}: "
                      f"{statistics.median(forced):.2f} s "
                      f"({', '.join(f'{t:.2f}' for t in forced)})", flush=True)
                for run in range(args.runs):
                    with Load(box, pebble.root, max_seconds=args.load_seconds) as load:
                        time.sleep(2)
                        renew = adapto(inventory, "ssl", "renew", "--force-renewal")
                        time.sleep(2)
                    print(f"forced renewal {run + 1} under load ({renew:.2f} s): "
                          f"{load.total} requests at 8 TLS connections, "
                          f"{sum(load.failures.values())} failed {dict(load.failures) or ''}; "
                          f"{load.resent_on_closed_keepalive} resent once on a new connection "
                          "(keep-alive connection closed by the reload, as a browser resends)",
                          flush=True)
                    for line in load.failure_details:
                        print(f"  {line}", flush=True)
        finally:
            pebble.stop()


if __name__ == "__main__":
    main()
