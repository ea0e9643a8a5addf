"""GET and POST traffic across `deploy backend`, `deploy frontend` and `rollback`.

For each scenario and method, 16 TLS connections through nginx (Host and SNI
= the site's name) load the sandbox from 1 s before the command until 1 s
after both its end and the last failure (caps 60 s and 30000 requests per
run), paced at 300 requests/s in total:

- GET  /api/health;
- POST /api/probe/record with a JSON body {id, payload} (a 512-byte payload,
  a chat message's size) and a unique id per request. The reference backend
  stores one row per request it processed (table probe_requests), so after
  the run: *duplicates* = ids stored more than once (a request processed
  twice), *missing* = ids the client got a 2xx for that are not stored.

Failed = any status but 200 or a transport error, by kind: 502, reset (the
connection closed or reset before an answer), timeout, other. New lines of
nginx's error log are counted by cause, with a few sample lines as evidence.
Scenario "nginx reload" (10 SIGHUPs under the load) and method "GET/resend"
(a browser-like client) show what a reload costs under load; the reload race
on idle client keep-alive connections is counted on its own too
(benchmarks/_reload_race.py).

Library use (benchmarks/deploy.py calls it on its own sandbox)::

    from deploy_traffic import Target, measure_traffic
    target = Target.from_sandbox(secrets_file, sandbox_dir / host, address, https_port, name)
    rows = measure_traffic(run, target)  # run(*args) runs `adapto ARGS -e ENV -i INV`

The sandbox's inventory must list ADAPTO_PROBE_TOKEN and MIGRATION_DATABASE_URL
in secrets.names (the repository's sandbox does) and run backend.migrate, so
that migration 0005 (probe_requests) is applied.

Command line: brings up its own sandbox on 127.0.0.191 (SSH 2391, HTTPS 8491,
backends 3191/3192) under /var/tmp/adapto-bench-traffic-<pid> and purges it
at the end. Run as root:

    python3 benchmarks/deploy_traffic.py [--runs 3] [--reloads 50] [--json] [--no-drain]
    python3 benchmarks/deploy_traffic.py --scenarios "nginx reload" --methods GET,GET/resend,POST
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _load import LoadResult, LoadRunner  # noqa: E402
from _reload_race import reload_race  # noqa: E402
from _traffic_report import print_rows  # noqa: E402

if TYPE_CHECKING:
    import httpx

PROBE_PATH = "/api/probe/record"
HEALTH_PATH = "/api/health"
PAYLOAD = "m" * 512
CONNECTIONS = 16
RATE = 300.0
LEAD_S = 1.0
CAP_S = 60.0
CAP_REQUESTS = 30000
RELOADS_UNDER_LOAD = 10  # the "nginx reload" scenario: SIGHUPs, 0.5 s apart
SCENARIOS: dict[str, tuple[str, ...]] = {
    "deploy backend": ("deploy", "backend", "--force", "--yes"),
    # The dist gets one changed file first, so the switch reloads nginx.
    "deploy frontend": ("deploy", "frontend", "--skip-build", "--yes"),
    "rollback": ("rollback", "--yes"),
    # Not adapto: SIGHUP to nginx's master (what a site config change costs).
    "nginx reload": (),
}
NGINX_CAUSES = {"upstream prematurely closed": "upstream prematurely closed",
                "reset by upstream": "(104: Connection reset by peer)",
                "connect() refused": "connect() failed (111",
                "no live upstreams": "no live upstreams",
                "upstream timed out": "upstream timed out"}


@dataclass
class Target:
    """The sandbox measure_traffic loads, and where it reads what happened."""

    address: str
    https_port: int
    server_name: str
    probe_token: str  # ADAPTO_PROBE_TOKEN: the probe route needs it, and limit_req skips it
    database_url: str  # a role that reads probe_requests (the migration owner's URL)
    nginx_error_log: Path
    nginx_pid_file: Path
    frontend_dist: Path | None = None  # a file in it changes before `deploy frontend`

    def url(self, path: str) -> str:
        """https://address:port/path."""
        return f"https://{self.address}:{self.https_port}{path}"

    @classmethod
    def from_sandbox(cls, secrets_file: Path, sandbox_dir: Path, address: str, https_port: int,
                     server_name: str, frontend_dist: Path | None = None) -> Target:
        """A sandbox host made by `adapto sandbox up`: the probe token and the migration
        owner's URL from its secrets file, nginx's files under ``sandbox_dir`` (<dir>/<host>)."""
        sys.path.insert(0, str(REPO))
        from adapto_ops.inventory.secrets import parse_dotenv

        secrets = parse_dotenv(secrets_file.read_text())
        return cls(address, https_port, server_name, secrets["ADAPTO_PROBE_TOKEN"],
                   secrets["MIGRATION_DATABASE_URL"], sandbox_dir / "nginx" / "logs" / "error.log",
                   sandbox_dir / "nginx" / "logs" / "nginx.pid", frontend_dist)


class TrafficRunner(LoadRunner):
    """LoadRunner sending GET /api/health or POST /api/probe/record with unique ids.

    Method "GET/resend" is a browser-like client: a GET whose reused connection
    ends before any byte of the answer is resent ONCE on a new connection, as
    Chromium and Firefox do for idempotent requests; the others never resend.
    """

    def __init__(self, target: Target, method: str, run_id: str, **kwargs: Any) -> None:
        path = PROBE_PATH if method == "POST" else HEALTH_PATH
        super().__init__(target.url(path), target.server_name, **kwargs)
        self.method, self.run_id, self.token = method, run_id, target.probe_token
        self.sent: list[str] = []
        self.ok: set[str] = set()
        self.resent = 0

    async def _get(self, client: httpx.AsyncClient) -> httpx.Response:
        import httpx

        headers = {"X-Adapto-Probe": self.token}
        ext = {"sni_hostname": self.server_name}
        if self.method == "GET/resend":
            try:
                return await client.get(self.url, headers=headers, extensions=ext)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                # httpx raises these before any answer byte on a dropped keep-alive connection.
                self.resent += 1
                return await client.get(self.url, headers=headers, extensions=ext)
        if self.method != "POST":
            return await client.get(self.url, headers=headers, extensions=ext)
        rid = f"{self.run_id}-{len(self.sent)}"
        self.sent.append(rid)
        response = await client.post(self.url, json={"id": rid, "payload": PAYLOAD},
                                     headers=headers, extensions=ext)
        if response.status_code == 200:
            self.ok.add(rid)
        return response


def kind_of(raw: str) -> str:
    """502 / reset / timeout / other, from LoadResult's kinds (status or exception name)."""
    if raw == "HTTP 502":
        return "502"
    if "Timeout" in raw:
        return "timeout"
    if raw in {"RemoteProtocolError", "ReadError", "WriteError", "ConnectError"}:
        return "reset"
    return "other"


class NginxLog:
    """The new lines of nginx's error log since construction: counts by cause, samples."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def read(self) -> tuple[dict[str, int], list[str]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                lines = handle.read().decode(errors="replace").splitlines()
        except OSError:
            return {}, []
        counts = {label: sum(needle in ln for ln in lines)
                  for label, needle in NGINX_CAUSES.items()}
        samples = [ln[:400] for ln in lines
                   if any(needle in ln for needle in NGINX_CAUSES.values())][:3]
        return {k: v for k, v in counts.items() if v}, samples


def stored_counts(database_url: str, run_id: str) -> dict[str, int]:
    """request_id -> rows in probe_requests for this run's ids."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
        rows = conn.execute("select request_id, count(*) from probe_requests"
                            " where request_id like %s group by request_id",
                            (run_id + "-%",)).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def under_load(runner: TrafficRunner, action: Callable[[], Any]) -> tuple[LoadResult, Any, float]:
    """Load from LEAD_S before ``action()`` to LEAD_S after its end and the last failure."""
    runner.start()
    try:
        outcome, took = runner.around(action, LEAD_S)
    finally:
        result = runner.stop()
    return result, outcome, took


def _exit_code(outcome: Any) -> int | None:
    code = getattr(outcome, "returncode", getattr(outcome, "code", None))
    return code if isinstance(code, int) else None


def measure_one(run: Callable[..., Any], target: Target, scenario: str, method: str, *,
                args: tuple[str, ...], connections: int = CONNECTIONS,
                rate: float = RATE) -> dict[str, Any]:
    """One scenario under one method's load: the row measure_traffic returns for it."""
    if scenario == "deploy frontend" and target.frontend_dist is not None:
        marker = target.frontend_dist / "deploy-traffic.txt"
        marker.write_text(f"{uuid.uuid4().hex}\n")
    run_id = f"{method.lower()}-{uuid.uuid4().hex[:12]}"
    runner = TrafficRunner(target, method, run_id, connections=connections, rate=rate,
                           max_seconds=CAP_S, max_requests=CAP_REQUESTS)
    log = NginxLog(target.nginx_error_log)

    def reloads() -> None:
        for _ in range(RELOADS_UNDER_LOAD):
            os.kill(int(target.nginx_pid_file.read_text().split()[0]), signal.SIGHUP)
            time.sleep(0.5)

    action = reloads if scenario == "nginx reload" else (lambda: run(*args))
    result, outcome, took = under_load(runner, action)
    # The error log is written by nginx's workers as requests end: let them finish.
    time.sleep(0.2)
    causes, samples = log.read()
    kinds: Counter[str] = Counter()
    for raw, n in result.by_kind.items():
        kinds[kind_of(raw)] += n
    row: dict[str, Any] = {
        "scenario": scenario, "method": method, "command": " ".join(args),
        "exit": _exit_code(outcome), "command_s": round(took, 2),
        "requests": result.total, "failed": result.failed,
        "failed_by_kind": dict(kinds), "raw_kinds": dict(result.by_kind),
        "duplicates": None, "missing": None, "failed_but_stored": None,
        "nginx_errors": causes, "nginx_error_samples": samples,
        "load_s": round(result.duration_s, 1), "capped": result.capped,
        "resent": runner.resent,
    }
    if scenario == "nginx reload":
        row["command"], row["exit"] = f"{RELOADS_UNDER_LOAD} x kill -HUP <nginx master>", 0
    if method == "POST":
        stored = stored_counts(target.database_url, run_id)
        row["duplicates"] = sum(1 for n in stored.values() if n > 1)
        row["missing"] = sum(1 for rid in runner.ok if rid not in stored)
        # A failure the server processed anyway: the client cannot know it went through.
        row["failed_but_stored"] = sum(1 for rid in runner.sent
                                       if rid not in runner.ok and rid in stored)
        row["stored"] = sum(stored.values())
    return row


def measure_traffic(run: Callable[..., Any], target: Target, *,
                    scenarios: Iterable[str] = ("deploy backend", "deploy frontend",
                                                "rollback"),
                    methods: Iterable[str] = ("GET", "POST"), runs: int = 1,
                    connections: int = CONNECTIONS, rate: float = RATE, reloads: int = 0,
                    actions: dict[str, tuple[str, ...]] | None = None,
                    progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Failed requests across each scenario under each method's load; one dict per run.

    ``run(*args)`` runs `adapto ARGS` on the target's environment and returns an
    object with ``returncode`` (or ``code``); ``actions`` overrides the arguments
    of a scenario (default SCENARIOS). Scenarios run in the order given, per
    method, ``runs`` times (rollback needs a previous release: keep it after a
    deploy). Methods: GET, POST, GET/resend (a browser-like client: a GET whose
    reused connection dropped before any answer byte is resent once; ``resent``
    counts them). Scenario "nginx reload" is 10 SIGHUPs to nginx, 0.5 s apart,
    instead of a command. Each dict: scenario, method, command, exit, command_s,
    requests, failed, failed_by_kind (502/reset/timeout/other), duplicates,
    missing and failed_but_stored (POST only, else None), resent, nginx_errors
    (cause -> lines) and nginx_error_samples. With ``reloads`` > 0 a last dict counts the nginx
    reload race on idle keep-alive clients (scenario "nginx reload, idle
    keep-alive clients": failed, reloads_with_failure, browser_like_failed).
    """
    table = {**SCENARIOS, **(actions or {})}
    rows = []
    for index in range(runs):
        for method in methods:
            for scenario in scenarios:
                if progress:
                    progress(f"{scenario} under {method} load ({index + 1}/{runs})")
                row = measure_one(run, target, scenario, method, args=table[scenario],
                                  connections=connections, rate=rate)
                row["run"] = index + 1
                rows.append(row)
    if reloads > 0:
        if progress:
            progress(f"nginx reload race: {reloads} reloads, {connections} idle clients")
        race = reload_race(target.address, target.https_port, target.server_name,
                           target.nginx_pid_file, reloads=reloads, clients=connections,
                           token=target.probe_token)
        rows.append(race.as_dict())
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="runs per scenario and method")
    parser.add_argument("--reloads", type=int, default=50, help="nginx reload race rounds")
    parser.add_argument("--methods", default="GET,POST",
                        help="GET, POST and/or GET/resend (a browser-like GET client)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma-separated, of: " + ", ".join(SCENARIOS))
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--json", action="store_true", help="the rows as JSON lines too")
    parser.add_argument("--no-drain", action="store_true",
                        help="the backend without its drain (DRAIN_TIMEOUT_S=0): the before")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("error: run as root: the sandbox runs sshd and nginx as root", file=sys.stderr)
        return 2
    sys.path.insert(0, str(REPO))
    from tests.operate_sandbox import SERVER_NAME, Slot, deployed_sandbox

    slot = Slot("127.0.0.191", 2391, 8191, 8491, (3191, 3192))
    base = Path(f"/var/tmp/adapto-bench-traffic-{os.getpid()}")
    base.mkdir(mode=0o755)

    def unlimited(env: dict[str, Any]) -> None:
        env["nginx"]["rate_limits"] = {"api": {"rate": "10000r/s", "burst": 10000},
                                       "auth": {"rate": "5r/m", "burst": 10}}
        if args.no_drain:
            env["backend"]["env"] = {**env["backend"].get("env", {}), "DRAIN_TIMEOUT_S": "0"}

    try:
        with deployed_sandbox(base, slot, adjust=unlimited) as box:
            target = Target.from_sandbox(base / ".adapto" / "secrets.env", box.sdir,
                                         slot.address, slot.https_port, SERVER_NAME,
                                         base / "frontend" / "dist")
            print(f"deploy traffic: {CONNECTIONS} TLS connections at {args.rate:.0f} req/s "
                  f"through nginx on {slot.address}:{slot.https_port}; backend drain "
                  f"{'off' if args.no_drain else 'on'}; load average "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
            rows = measure_traffic(
                box.cli, target, scenarios=args.scenarios.split(","),
                methods=args.methods.split(","), runs=args.runs, rate=args.rate,
                reloads=args.reloads,
                progress=lambda t: print(f"... {t}", file=sys.stderr, flush=True))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_rows(rows)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    failed = [r for r in rows if r.get("exit") not in (None, 0)]
    for r in failed:
        print(f"error: `adapto {r['command']}` exited {r['exit']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
