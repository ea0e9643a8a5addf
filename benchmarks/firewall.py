"""Wall time of `adapto firewall apply` and `plan` against real ufw, in network namespaces.

The lab of tests/firewall_lab.py (server and client namespaces, real sshd and
ufw on private copies of its files); each round resets the server's ufw
(`ufw --force reset` over SSH), then times, from the client namespace:
apply on the fresh host, plan when in sync, and apply when in sync. Each
time is a whole CLI run (interpreter start, SSH connect, ufw reads). Run as root:
    python3 benchmarks/firewall.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _report import timed_cli  # noqa: E402

from tests.firewall_lab import ENV, SERVER_IP, Lab, firewall_lab  # noqa: E402


def timed(lab: Lab, *args: str) -> float:
    return timed_cli(lab.adapto, *args)


def reset(lab: Lab) -> None:
    result = lab.in_client(
        "ssh", "-i", str(lab.key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
        "-o", "BatchMode=yes", f"root@{SERVER_IP}",
        "PATH=$PATH:/usr/sbin ufw --force reset >/dev/null", timeout=60)
    if result.returncode != 0:
        raise SystemExit(f"ufw reset failed: {result.stderr.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {"apply (fresh host)": [], "plan (in sync)": [],
                                       "apply (in sync)": []}
    with tempfile.TemporaryDirectory(prefix="adfw-bench-") as tmp, \
            firewall_lab(Path(tmp)) as lab:
        for _ in range(args.rounds):
            reset(lab)
            samples["apply (fresh host)"].append(
                timed(lab, "firewall", "apply", "-e", ENV, "--yes", "--json"))
            samples["plan (in sync)"].append(timed(lab, "firewall", "plan", "-e", ENV, "--json"))
            samples["apply (in sync)"].append(
                timed(lab, "firewall", "apply", "-e", ENV, "--yes", "--json"))
    print(f"{'adapto firewall':<22} {'median s':>9} {'min s':>7} {'max s':>7}   "
          f"({args.rounds} rounds)")
    for name, values in samples.items():
        print(f"{name:<22} {statistics.median(values):>9.2f} {min(values):>7.2f} "
              f"{max(values):>7.2f}")


if __name__ == "__main__":
    main()
