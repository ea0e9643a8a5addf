"""The audit figures of issue 9 (items 4-7), one script: prints each figure it measures.

    python3 benchmarks/audit.py                    # all parts
    python3 benchmarks/audit.py inventory dbcheck  # some: inventory | dbcheck | tls | audit

- inventory: `adapto render` answering the 7-line nested-alias inventory (and
  one level deeper) with exit 2, beside `adapto --help` (CLI start-up);
- dbcheck:   `adapto db check --database-url` on a throwaway cluster with the
  bundled backend's schema migrated (8 lints);
- tls:       testssl.sh -p -E -h against a deployed sandbox's HTTPS endpoint;
- audit:     `adapto audit -e` on that sandbox (one host), and `db check -e`.

tls and audit share one sandbox on 127.0.0.161 (SSH 2465, HTTP 8465, HTTPS
8565, backends 3465/3466, PostgreSQL 5435), purged at the end; only loopback
is contacted. Run as root from the repository. Each CLI timing is the median
of ``--runs`` runs (default 3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.e2e_support import adapto  # noqa: E402
from tests.operate_sandbox import SERVER_NAME, Slot, deployed_sandbox  # noqa: E402

SLOT = Slot("127.0.0.161", 2465, 8465, 8565, (3465, 3466))
POSTGRES_PORT = 5435


def timed(fn: Any, runs: int) -> tuple[float, Any]:
    """Median seconds of ``runs`` calls, and the last call's result."""
    times, last = [], None
    for _ in range(runs):
        started = time.perf_counter()
        last = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), last


def laughs(levels: int) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        prev, name = "abcdefghij"[i - 1], "abcdefghij"[i]
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def part_inventory(runs: int) -> None:
    help_s, _ = timed(lambda: adapto("--help"), runs)
    print(f"adapto --help (start-up reference): median {help_s:.2f} s")
    from adapto_ops.errors import InventoryError
    from adapto_ops.inventory import parse_inventory

    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "syntax.yaml"
        plain.write_text("project: [\n")
        seconds, _ = timed(lambda: adapto("render", "-i", str(plain), "-e", "x"), runs)
        print(f"render of a one-line YAML syntax error (reference): median {seconds:.2f} s")
        for levels in (7, 8):
            started = time.perf_counter()
            try:
                parse_inventory(laughs(levels), Path("laughs.yaml"))
            except InventoryError:
                pass
            print(f"{levels}-line nested aliases, the reader alone (in process): "
                  f"{(time.perf_counter() - started) * 1000:.1f} ms")
            path = Path(tmp) / f"laughs{levels}.yaml"
            path.write_text(laughs(levels))
            seconds, result = timed(lambda p=path: adapto("render", "-i", str(p), "-e", "x"), runs)
            line = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
            print(f"{levels}-line nested aliases: exit {result.returncode}, median {seconds:.2f} s "
                  f"({line[:90]})")


def part_dbcheck(runs: int) -> None:
    from adapto_ops.pg_cluster import provision, running_cluster

    backend = REPO / "reference" / "backend"
    with running_cluster() as cluster:
        urls = provision(cluster, "bench", ("owner", "owner-pw-b1"), ("app", "app-pw-b1"))
        env = dict(os.environ, MIGRATION_DATABASE_URL=urls.owner, PYTHONPATH=str(backend))
        subprocess.run([sys.executable, "-m", "aiplatform.migrate"], cwd=backend, env=env,
                       check=True, capture_output=True, timeout=120)
        seconds, result = timed(lambda: adapto("db", "check", "--database-url", urls.app), runs)
        print(f"db check --database-url (bundled schema, 8 lints): exit {result.returncode}, "
              f"median {seconds:.2f} s: {result.stdout.strip().splitlines()[-1]}")


def part_sandbox(parts: list[str], runs: int) -> None:
    def adjust(env: dict[str, Any]) -> None:
        env["sandbox"]["postgres_port"] = POSTGRES_PORT

    with tempfile.TemporaryDirectory(prefix="adapto-bench-audit-") as tmp, \
            deployed_sandbox(Path(tmp), SLOT, adjust=adjust) as box:
        if "tls" in parts:
            out = Path(tmp) / "scan.json"
            started = time.perf_counter()
            subprocess.run(["testssl", "--quiet", "--warnings", "off", "--color", "0",
                            "--jsonfile", str(out), "--ip", SLOT.address, "-p", "-E", "-h",
                            f"https://{SERVER_NAME}:{SLOT.https_port}"],
                           capture_output=True, timeout=600, check=False)
            print(f"testssl -p -E -h: {time.perf_counter() - started:.1f} s "
                  f"({out.stat().st_size if out.exists() else 0} bytes of JSON)")
        if "audit" in parts:
            seconds, result = timed(lambda: box.cli("audit", "--json"), runs)
            print(f"audit -e (one host): exit {result.returncode}, median {seconds:.2f} s")
            seconds, result = timed(lambda: box.cli("db", "check"), runs)
            print(f"db check -e (on the host): exit {result.returncode}, median {seconds:.2f} s")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["inventory", "dbcheck", "tls", "audit"])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    unknown = set(args.parts) - {"inventory", "dbcheck", "tls", "audit"}
    if unknown:
        print(f"error: unknown part(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    if "inventory" in args.parts:
        part_inventory(args.runs)
    if "dbcheck" in args.parts:
        part_dbcheck(args.runs)
    if {"tls", "audit"} & set(args.parts):
        part_sandbox(args.parts, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
