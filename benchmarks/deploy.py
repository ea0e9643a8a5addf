"""Deploy benchmark, in one run: deploy times and bytes beside rsync, the build cache, and
GET/POST failures across deploy backend, deploy frontend and rollback.

Brings up its own sandbox host on 127.0.0.41 (SSH port 2341, HTTPS 8441,
backends on 3041/3042) with every file under /var/tmp/adapto-bench-<pid>, and
always brings it down again with `sandbox down --purge` (then removes the
folder). Nothing here touches the repository's sandbox (127.0.0.2) or the test
suite's addresses. Run as root, from anywhere:

    python3 benchmarks/deploy.py            # full: ~3 runs per case
    python3 benchmarks/deploy.py --quick    # one run per case, shorter baseline
    python3 benchmarks/deploy.py --skip-load  # only the timings (b) and (c)
    python3 benchmarks/deploy.py --compare /work/main  # + another checkout's no-change

(a) With benchmarks/deploy_traffic.py present: its measure_traffic on this host
    (GET /api/health and POST /api/probe/record, 16 TLS connections at 300
    req/s, across deploy backend --force, deploy frontend and rollback, 3 runs
    each, 1 with --quick; duplicates and missing POSTs from the backend's own
    record; the nginx reload race, 50 reloads, 20 with --quick). Without it,
    the older GET-only table:
    Zero downtime: >= 16 TLS connections load https://127.0.0.41:8441/api/health
    through nginx (Host and SNI = the site's name, the sandbox's self-signed
    certificate not verified) from 1 s before each of `deploy backend --force`,
    `rollback --yes` (3 of each, 1 with --quick) and, for comparison, the
    runbook's `pm2 stop <namespace>; pm2 start <namespace>` until 1 s after
    both its end and the last failed request (caps: 60 s, 30000 requests).
    Failed = any status but 200 or any transport error. Target: 0 failed for
    adapto.
(b) Wall time of the whole CLI command and bytes sent (the `upload` event of
    `--json`) for `deploy frontend --skip-build` of a generated 300-file
    ~37 MB dist, each beside `rsync -a --delete` of the same dist over the same
    sshd right after it: first upload, no-change `--force` (targets <= 1.0 s
    and <= 2.5x rsync), no change skipped as unchanged (<= 1.5 s), one changed
    100 kB asset (<= 2 s). See benchmarks/_deploy_speed.py.
(c) The build cache: no-change `deploy all` with the real reference/frontend
    and its npm build (target <= 1.5 s), beside `deploy all --rebuild`.

Exit code 0 once every figure is printed (MISS included; --strict turns a MISS
into exit 1), 1 when the run could not be done, 2 when a tool is missing.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _deploy_speed import SshTarget, build_cache_section, speed_section
from _dist import Dist, write_tiny
from _load import LoadResult, LoadRunner
from _report import note, progress, table, verdict

REPO = Path(__file__).resolve().parent.parent
ENV = "sandbox"
HOST = "bench1"
ADDRESS = "127.0.0.41"
SSH_PORT = 2341
HTTP_PORT = 8041
HTTPS_PORT = 8441
BASE_PORT = 3041
INSTANCES = 2

CONNECTIONS = 16
RATE = 300.0  # requests/s over all connections: enough to see a 10 ms gap, light on CPU
LOAD_CAP_S = 60.0
LOAD_CAP_REQUESTS = 30000
LEAD_S = 1.0  # load runs this long before the command starts and after it ends



class BenchError(Exception):
    """The benchmark could not run; the message says why."""


# --- setup ----------------------------------------------------------------------------


def preflight() -> None:
    """Root, the sandbox's tools and free ports, before anything is created."""
    if os.geteuid() != 0:
        raise BenchError("run as root: the sandbox runs sshd and nginx as root")
    search = f"{os.environ.get('PATH', '')}:/usr/local/sbin:/usr/sbin:/sbin"
    need = {"nginx": "apt-get install nginx", "pm2": "npm install -g pm2@5",
            "node": "apt-get install nodejs npm", "ssh-keygen": "apt-get install openssh-client",
            "ssh": "apt-get install openssh-client"}
    missing = [f"{tool} ({how})" for tool, how in need.items()
               if not shutil.which(tool, path=search)]
    if not os.access("/usr/sbin/sshd", os.X_OK):
        missing.append("sshd (apt-get install openssh-server)")
    try:
        import httpx  # noqa: F401
    except ImportError:
        missing.append("httpx (pip install httpx)")
    if missing:
        raise ToolMissingError("missing: " + "; ".join(missing) + " (or run scripts/setup.sh)")
    ports = [SSH_PORT, HTTP_PORT, HTTPS_PORT, *range(BASE_PORT, BASE_PORT + INSTANCES)]
    for port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((ADDRESS, port))
            except OSError as exc:
                raise BenchError(f"{ADDRESS}:{port} is busy ({exc.strerror}); a previous run "
                                 "may still be up: look for /var/tmp/adapto-bench-*") from None


class ToolMissingError(BenchError):
    pass


def write_inventory(base: Path) -> Path:
    """The repository's sandbox environment, moved to ``base`` and to 127.0.0.41."""
    import yaml

    data = yaml.safe_load((REPO / "inventory.yaml").read_text())
    env = copy.deepcopy(data["environments"][ENV])
    env["hosts"] = [{**env["hosts"][0], "name": HOST, "address": ADDRESS, "port": SSH_PORT,
                     "key_file": ".adapto/id_ed25519"}]
    env = yaml.safe_load(yaml.safe_dump(env).replace("/var/tmp/adapto-sandbox", str(base)))
    env["secrets"]["file"] = ".adapto/secrets.env"
    env["frontend"]["source"] = str(base / "frontend")
    env["backend"]["source"] = str(REPO / env["backend"]["source"])
    env["backend"]["base_port"] = BASE_PORT
    env["backend"]["instances"] = INSTANCES
    nginx = env["nginx"]
    nginx["http_port"], nginx["https_port"] = HTTP_PORT, HTTPS_PORT
    # All load comes from one client address; the per-address limit (20r/s by
    # default) would answer most of it with 429. Raised here, for the benchmark only.
    nginx["rate_limits"] = {"api": {"rate": "10000r/s", "burst": 10000},
                            "auth": {"rate": "5r/m", "burst": 10}}
    env["firewall"]["allow"] = [f"{p}/tcp" for p in (SSH_PORT, HTTP_PORT, HTTPS_PORT)]
    env["firewall"]["deny"] = [f"{BASE_PORT + i}/tcp" for i in range(INSTANCES)]
    data["environments"] = {ENV: env}
    path = base / "inventory.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def write_variant(inventory: Path, base: Path) -> Path:
    """The benchmark's inventory with the frontend at ``base/webapp``, built by its command."""
    import yaml

    data = yaml.safe_load(inventory.read_text())
    data["environments"][ENV]["frontend"]["source"] = str(base / "webapp")
    path = base / "inventory-build.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- running adapto ---------------------------------------------------------------------


@dataclass
class CliRun:
    argv: list[str]
    code: int
    wall_s: float
    stdout: str
    stderr: str
    started_at: float = 0.0  # time.time() when the process was started
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def bytes_sent(self) -> int:
        return sum(int(e.get("data", {}).get("bytes_sent", 0)) for e in self.events
                   if e.get("step") == "upload" and e.get("kind") == "ok")

    @property
    def files_sent(self) -> int:
        return sum(int(e.get("data", {}).get("sent_files", 0)) for e in self.events
                   if e.get("step") == "upload" and e.get("kind") == "ok")

    @property
    def result(self) -> dict[str, Any]:
        return next((e for e in self.events if e.get("kind") == "result"), {})

    @property
    def release(self) -> str | None:
        data = self.result.get("data", {})
        # `rollback` without --to reports release null at the top; each host row has it.
        hosts = [h.get("release") for h in data.get("hosts", []) if h.get("release")]
        return data.get("release") or (hosts[0] if hosts else None)

    @property
    def outcome(self) -> str:
        hosts = self.result.get("data", {}).get("hosts", [])
        return ",".join(str(h.get("result")) for h in hosts) or "?"

    @property
    def duration_s(self) -> float:
        return float(self.result.get("data", {}).get("duration_s", 0.0))

    def steps(self) -> str:
        """Step timings of a --json run: `connect 0.21, upload 0.40, ...`."""
        done = [e for e in self.events if e.get("kind") in ("ok", "fail") and
                e.get("elapsed_s") is not None]
        text = ", ".join(f"{e['step']} {e['elapsed_s']:.2f}" for e in done)
        if self.events and self.started_at:
            # Where the rest went: before the first event (start-up), to the result, to exit.
            first = min(float(e["ts"]) for e in self.events) - self.started_at
            last = float(self.result.get("ts", 0.0)) - self.started_at
            text = (f"first event at {first:.2f}; {text}; result at {last:.2f}, "
                    f"exit at {self.wall_s:.2f}")
        return text

    def check(self, what: str) -> CliRun:
        if self.code != 0:
            tail = (self.stderr.strip() or self.stdout.strip()).splitlines()[-5:]
            raise BenchError(f"{what}: `adapto {' '.join(self.argv)}` exited {self.code}: "
                             + " | ".join(tail))
        return self


class Adapto:
    def __init__(self, inventory: Path, code: Path = REPO) -> None:
        self.inventory = inventory
        self.code = code  # the checkout whose adapto_ops runs (--compare: another one)

    def __call__(self, *args: str, timeout: float = 300) -> CliRun:
        """`python -m adapto_ops ARGS -e sandbox -i INVENTORY`, timed as a whole; output via files
        (a daemon the command starts must not hold a pipe open)."""
        argv = [*args, "-e", ENV, "-i", str(self.inventory)]
        env = {**os.environ, "PYTHONPATH": str(self.code), "COLUMNS": "200"}
        env.pop("ADAPTO_INVENTORY", None)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            started_at, started = time.time(), time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "adapto_ops", *argv], cwd=self.code,
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                  timeout=timeout, check=False)
            wall = time.perf_counter() - started
            out.seek(0)
            err.seek(0)
            run = CliRun(argv, proc.returncode, wall, out.read(), err.read(), started_at)
        if "--json" in args:
            for line in run.stdout.splitlines():
                if line.startswith("{"):
                    try:
                        run.events.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
        return run


# --- (a) requests across restarts ---------------------------------------------------------


@dataclass
class Scenario:
    """One row of table (a): every run of one command under load."""

    label: str
    target_zero: bool  # adapto's own procedures must fail nothing
    runs: list[tuple[LoadResult, float | None, str]] = field(default_factory=list)

    def add(self, result: LoadResult, command_s: float | None, detail: str) -> None:
        self.runs.append((result, command_s, detail))

    @property
    def merged(self) -> LoadResult:
        out = LoadResult(self.label, connections=self.runs[0][0].connections)
        for r, _, _ in self.runs:
            out.total += r.total
            out.failed += r.failed
            out.by_kind.update(r.by_kind)
            out.releases.update(r.releases)
            out.latencies_ms += r.latencies_ms
            out.duration_s += r.duration_s
            out.cpu_s += r.cpu_s
            out.peak_in_flight = max(out.peak_in_flight, r.peak_in_flight)
        return out

    def command_s(self) -> str:
        times = [f"{c:.2f}" for _, c, _ in self.runs if c is not None]
        return "/".join(times) or "-"


def under_load(label: str, url: str, server_name: str, action: Any, *, rate: float,
               connections: int, idle_s: float = 0.0) -> tuple[LoadResult, Any, float]:
    """Load from LEAD_S before ``action()`` until LEAD_S after it ended and LEAD_S after the
    last failure (so an outage that outlasts the command is seen whole), within the caps.
    Without an action: ``idle_s`` of load."""
    runner = LoadRunner(url, server_name, label=label, connections=connections, rate=rate,
                        max_seconds=LOAD_CAP_S, max_requests=LOAD_CAP_REQUESTS).start()
    outcome, took = None, 0.0
    try:
        if action is None:
            time.sleep(idle_s)
        else:
            outcome, took = runner.around(action, LEAD_S)
    finally:
        result = runner.stop()
    return result, outcome, took


def failures_by_step(result: LoadResult, run: CliRun | None) -> str:
    """When requests failed, relative to the command's start and to its steps (from the
    --json events: a step spans [ts - elapsed_s, ts])."""
    if not result.failure_walls or run is None or not run.events:
        return ""
    spans = []
    for e in run.events:
        if e.get("kind") in ("ok", "fail") and e.get("elapsed_s") is not None:
            name = str(e["step"])
            if name == "restart":  # which instance
                name += " " + str(e.get("message", "")).split(" ")[0]
            spans.append((e["ts"] - e["elapsed_s"], e["ts"], name))
    groups: dict[str, list[float]] = {}
    for t in result.failure_walls:
        inside = [s for s in spans if s[0] <= t <= s[1]]
        if inside:
            begin, _, step = min(inside, key=lambda s: s[1] - s[0])
            place = f"{t - begin:.1f}s into {step}"
        elif spans:
            _, end, step = min(spans, key=lambda s: abs(t - s[1]))
            place = f"{t - end:+.1f}s from the end of {step}"
        else:
            place = "no step"
        groups.setdefault(place, []).append(t - run.started_at)
    return "; failed: " + ", ".join(
        f"{len(ts)} at t+{min(ts):.2f}..{max(ts):.2f}s of the command, {place}"
        for place, ts in groups.items())


class NginxErrors:
    """Upstream errors nginx logged during one run (new lines of its error log)."""

    PATTERNS = {"no live upstreams": "no live upstreams",
                "connect() refused": "connect() failed (111",
                "reset by upstream": "(104: Connection reset by peer)",
                "upstream closed early": "upstream prematurely closed"}

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def summary(self) -> str:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                text = handle.read().decode(errors="replace")
        except OSError:
            return ""
        counts = {label: text.count(needle) for label, needle in self.PATTERNS.items()}
        found = ", ".join(f"{label} x{n}" for label, n in counts.items() if n)
        return f"; nginx error log: {found}" if found else ""


def runbook_restart(base: Path, namespace: str) -> subprocess.CompletedProcess[str]:
    """The runbook's procedure, run locally on the sandbox's PM2: stop all, then start."""
    node = shutil.which("node") or "node"
    env = {"PATH": f"{Path(node).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                   "/sbin:/bin",
           "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8",
           "PM2_HOME": str(base / HOST / "pm2")}
    script = f"pm2 stop {namespace} >/dev/null && pm2 start {namespace} >/dev/null"
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def wait_healthy(url: str, server_name: str, timeout: float = 30) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last = ""
    with httpx.Client(verify=False, timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                r = client.get(url, headers={"Host": server_name},
                               extensions={"sni_hostname": server_name})
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.2)
    raise BenchError(f"{url} not healthy after {timeout:.0f}s ({last})")


def section_a(adapto: Adapto, base: Path, server_name: str, namespace: str, *, quick: bool,
              rate: float, connections: int) -> list[bool]:
    url = f"https://{ADDRESS}:{HTTPS_PORT}/api/health"
    wait_healthy(url, server_name)
    cycles = 1 if quick else 3
    baseline = Scenario("baseline (no command)", True)
    deploy = Scenario("adapto deploy backend --force", True)
    rollback = Scenario("adapto rollback", True)
    runbook = Scenario("runbook: pm2 stop all; start", False)
    load = {"rate": rate, "connections": connections}
    error_log = base / HOST / "nginx" / "logs" / "error.log"

    progress("(a) baseline load, no command")
    res, _, _ = under_load("baseline", url, server_name, None, idle_s=2.0 if quick else 5.0,
                           **load)
    baseline.add(res, None, "")
    for cycle in range(1, cycles + 1):
        for scenario, args in ((deploy, ("deploy", "backend", "--force")),
                               (rollback, ("rollback",))):
            progress(f"(a) {scenario.label} under load ({cycle}/{cycles})")
            errors = NginxErrors(error_log)
            res, run, took = under_load(scenario.label, url, server_name,
                                        lambda a=args: adapto(*a, "--yes", "--json"), **load)
            run.check(scenario.label)
            scenario.add(res, took, f"exit {run.code}, {run.outcome}, now on {run.release}"
                         + failures_by_step(res, run) + errors.summary())
    progress("(a) runbook: pm2 stop all; start, under load")
    errors = NginxErrors(error_log)
    res, proc, took = under_load("runbook", url, server_name,
                                 lambda: runbook_restart(base, namespace), **load)
    if proc.returncode != 0:
        raise BenchError(f"runbook pm2 stop/start failed: {proc.stderr.strip()[-300:]}")
    runbook.add(res, took, f"`pm2 stop {namespace}; pm2 start {namespace}` on the sandbox's PM2"
                + errors.summary())
    wait_healthy(url, server_name)

    scenarios = [baseline, deploy, rollback, runbook]
    rows, verdicts = [], []
    for s in scenarios:
        r = s.merged
        ok = r.failed == 0
        if s.target_zero:
            verdicts.append(ok)
        rows.append([
            s.label, str(len(s.runs)), s.command_s(), f"{r.duration_s:.1f}", str(r.total),
            str(r.failed), r.kinds(), f"{r.rps:.0f}", f"{r.percentile_ms(50):.1f}",
            f"{r.percentile_ms(99):.1f}", f"{r.percentile_ms(100):.0f}",
            "0 failed" if s.target_zero else "(comparison)",
            verdict(ok) if s.target_zero else ("0 failed" if ok else f"{r.failed} failed"),
        ])
    table(f"(a) Failed requests under load: {connections} TLS connections to {url} "
          f"(Host/SNI {server_name}), paced at {rate:.0f} req/s, from {LEAD_S:.0f} s before "
          f"the command to {LEAD_S:.0f} s after both its end and the last failure (caps "
          f"{LOAD_CAP_S:.0f} s, {LOAD_CAP_REQUESTS} requests per run)",
          ["scenario", "runs", "command s", "load s", "total", "failed", "failures by kind",
           "req/s", "p50 ms", "p99 ms", "max ms", "target", "result"], rows)
    for s in scenarios:
        for i, (r, _, detail) in enumerate(s.runs, start=1):
            window = ""
            if r.failure_times:
                first, last = min(r.failure_times), max(r.failure_times)
                window = (f"; failures from t={first:.2f}s to t={last:.2f}s of the load "
                          f"({last - first:.2f} s)")
            answered = ", ".join(f"{k}: {n}" for k, n in sorted(r.releases.items()))
            note(f"{s.label} #{i}: {detail + '; ' if detail else ''}{r.total} requests, "
                 f"{r.failed} failed{window}; 200s by release {answered}; peak in flight "
                 f"{r.peak_in_flight}/{r.connections}; load generator CPU "
                 f"{r.cpu_percent:.0f}% of one core"
                 + (f"; stopped by the {r.capped} cap" if r.capped else ""))
    if any(s.merged.by_kind.get("RemoteProtocolError") for s in scenarios):
        note("RemoteProtocolError = the server closed a kept-alive connection without "
             "answering the request just sent on it (nginx's old workers close idle keep-alive "
             "connections on a graceful reload); browsers resend such requests, this client "
             "does not: counted as failed")
    if any(s.merged.by_kind.get("HTTP 502") for s in (deploy, rollback)):
        note("HTTP 502 with 'no live upstreams' during a rolling restart = nginx still counted "
             "the instance restarted before as failed (max_fails/fail_timeout, checked on a "
             "1-second clock) when the next one was stopped")
    note("nginx limit_req for /api/ raised to 10000r/s in the benchmark inventory: "
         "all load comes from one client address")
    return verdicts


# --- (a) GET and POST across deploys: benchmarks/deploy_traffic.py on this sandbox ---------


def traffic_available() -> bool:
    """benchmarks/deploy_traffic.py (GET and POST load, duplicates, missing) is there."""
    return (Path(__file__).resolve().parent / "deploy_traffic.py").is_file()


def section_traffic(adapto: Adapto, base: Path, server_name: str, dist: Path, *, quick: bool,
                    rate: float, connections: int) -> list[bool]:
    """GET and POST failures across deploy backend, deploy frontend and rollback, and the
    nginx reload race, measured by deploy_traffic.measure_traffic on this benchmark's host."""
    sys.path.insert(0, str(REPO))  # this worktree's adapto_ops, not an installed one
    from deploy_traffic import Target, measure_traffic, print_rows

    from adapto_ops.inventory.secrets import parse_dotenv

    secrets = parse_dotenv((base / ".adapto" / "secrets.env").read_text())
    logs = base / HOST / "nginx" / "logs"
    target = Target(ADDRESS, HTTPS_PORT, server_name, secrets["ADAPTO_PROBE_TOKEN"],
                    secrets["MIGRATION_DATABASE_URL"], logs / "error.log", logs / "nginx.pid",
                    dist)
    wait_healthy(f"https://{ADDRESS}:{HTTPS_PORT}/api/health", server_name)
    rows = measure_traffic(lambda *a: adapto(*a), target, runs=1 if quick else 3,
                           connections=connections, rate=rate, reloads=20 if quick else 50,
                           progress=progress)
    print(f"\n(a) failed requests under load: {connections} TLS connections through nginx at "
          f"{rate:.0f} req/s, GET /api/health and POST /api/probe/record (512-byte body, "
          "unique id, stored per request) across each command (benchmarks/deploy_traffic.py)")
    print_rows(rows)
    commands = [r for r in rows if "reloads" not in r]
    bad = [r for r in commands if r.get("exit") not in (None, 0)]
    for r in bad:
        note(f"`adapto {r['command']}` exited {r['exit']}")
    zero = all(r["failed"] == 0 and not r.get("duplicates") for r in commands)
    note(f"target 0 failed and 0 processed twice across adapto's commands: {verdict(zero)}")
    return [zero and not bad]


# --- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run per case, shorter load")
    parser.add_argument("--rate", type=float, default=RATE, help="load: requests/s in total")
    parser.add_argument("--connections", type=int, default=CONNECTIONS,
                        help="load: TLS connections (>= 16)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--reps", type=int, default=0, metavar="N",
                        help="repeats of each timing case in (b) and (c) (default 3, --quick 1)")
    parser.add_argument("--compare", metavar="CHECKOUT",
                        help="also time no-change --force with the adapto_ops of another "
                             "checkout (e.g. /work/main) on the same host, run by run")
    parser.add_argument("--skip-load", action="store_true",
                        help="only the timing tables (b) and (c): no load, no table (a)")
    args = parser.parse_args()
    if args.connections < 16:
        parser.error("--connections must be >= 16")
    started = time.perf_counter()
    # A SIGTERM must run the clean-up below too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        preflight()
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ToolMissingError) else 1

    base = Path(f"/var/tmp/adapto-bench-{os.getpid()}")
    base.mkdir(mode=0o755)
    adapto = Adapto(write_inventory(base))
    verdicts: list[bool] = []
    code = 0
    try:
        import yaml

        env = yaml.safe_load(adapto.inventory.read_text())["environments"][ENV]
        server_name, namespace = env["nginx"]["server_names"][0], env["backend"]["name"]
        print(f"adapto deploy benchmark{' (--quick)' if args.quick else ''}: sandbox host "
              f"{HOST} on {ADDRESS} (ssh :{SSH_PORT}, https :{HTTPS_PORT}), files in {base}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
        progress("sandbox up")
        adapto("sandbox", "up", timeout=120).check("sandbox up")
        dist = Dist(base / "frontend" / "dist")
        write_tiny(dist.dist)
        progress("bootstrap release: deploy all --skip-build (tiny dist; installs the backend)")
        boot = adapto("deploy", "all", "--skip-build", "--yes", "--json",
                      timeout=900).check("bootstrap deploy all")
        note(f"bootstrap `deploy all --skip-build`: {boot.wall_s:.1f} s, release {boot.release}")
        reps = args.reps or (1 if args.quick else 3)
        ssh = SshTarget(ADDRESS, SSH_PORT, base / ".adapto" / "id_ed25519",
                        base / HOST / "ssh" / "known_hosts", base / HOST)
        before = Adapto(adapto.inventory, Path(args.compare)) if args.compare else None
        verdicts += speed_section(adapto, dist, ssh, reps=reps, before=before)
        verdicts += build_cache_section(Adapto(write_variant(adapto.inventory, base)), REPO,
                                        base / "webapp", reps=reps)
        if args.skip_load:
            pass
        elif traffic_available():
            verdicts += section_traffic(adapto, base, server_name, dist.dist, quick=args.quick,
                                        rate=args.rate, connections=args.connections)
        else:
            verdicts += section_a(adapto, base, server_name, namespace, quick=args.quick,
                                  rate=args.rate, connections=args.connections)
    except (BenchError, RuntimeError) as exc:  # RuntimeError: rsync failed
        print(f"\nerror: {exc}", file=sys.stderr)
        code = 1
    except subprocess.TimeoutExpired as exc:
        print(f"\nerror: timed out: {exc}", file=sys.stderr)
        code = 1
    finally:
        progress("sandbox down --purge")
        down = adapto("sandbox", "down", "--purge", timeout=120)
        if down.code != 0:
            print(f"warning: sandbox down --purge exited {down.code}: {down.stderr.strip()}",
                  file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)
        if base.exists():
            print(f"warning: could not remove {base}", file=sys.stderr)
    total = time.perf_counter() - started
    if code == 0:
        met = sum(verdicts)
        print(f"\n{met}/{len(verdicts)} targets met; benchmark took {total:.0f} s; load average "
              f"(1 min) {os.getloadavg()[0]:.2f} at the end (other work on the machine "
              "inflates the times)")
        if args.strict and met < len(verdicts):
            code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
