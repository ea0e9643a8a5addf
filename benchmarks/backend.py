"""Backend benchmark: the API through nginx over TLS at 64 connections, beside nginx's ceiling.

Brings up its own deployed sandbox on 127.0.0.125 (SSH 2425, HTTP 8425,
HTTPS 8525, backends 3425/3426, the sandbox's PostgreSQL on 127.0.0.125:5432)
under a temporary folder with tests/operate_sandbox.py, and purges it at the
end. Run as root, from the repository:

    python3 benchmarks/backend.py                    # 10 s per scenario, both passes
    python3 benchmarks/backend.py --seconds 20 --connections 64
    python3 benchmarks/backend.py --rate 100         # the paced pass at 100 req/s
    python3 benchmarks/backend.py --paced-fraction 0 # flat out only

Setup through the API, as a user would: sign up (the project comes with the
account), create dialogs and a few messages. Then, one after the other in the
same run, each scenario on 64 keep-alive TLS connections (handshakes before
the clock, 1 s warm-up not counted), bounded by --seconds and --max-requests,
in two passes:

- flat out: every connection sends its next request as soon as the previous
  answer arrives; this measures capacity, and its latency is ~64 / capacity
  (queueing), whatever the server's cost per request;
- paced: the same 64 connections at --rate req/s in total, or by default at
  --paced-fraction (0.5) of the scenario's own flat-out req/s: latency at a
  realistic load (a server run at half its capacity).

The verdict of each pass is printed; the target is met under a pass only when
both reads are "ok" in it.

- static:  nginx serving a static file (the ceiling: no proxy, no backend);
- health:  GET /api/health (backend + a database round trip);
- dialogs: GET /api/dialogs?limit=20 with a bearer token (JWT check, RLS query);
- post:    POST /api/chat/<dialog>/messages (insert under RLS, NOTIFY, and the
           agent's answer in the background).

All load comes from one address, which nginx's limit_req would throttle; every
request carries the environment's probe token (X-Adapto-Probe), which the
rendered site exempts from the limits, as adapto's own probes are. Targets on
2 cores: p99 < 50 ms for the reads (health, dialogs); 0 errors everywhere.
Exit 0 once the figures are printed (1 with --strict on a MISS).
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._rawload import Figures, Load, Scenario  # noqa: E402
from tests.operate_sandbox import SERVER_NAME, OpBox, Slot, deployed_sandbox  # noqa: E402

SLOT = Slot("127.0.0.125", 2425, 8425, 8525, (3425, 3426))
READ_P99_TARGET_MS = 50.0
STATIC_PATH = "/assets/index-op0001.js"  # written by tests/operate_sandbox.write_sources
DIALOGS = 12


TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds used) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) * TICK_S


def tree_cpu_s(roots: list[int]) -> float:
    """CPU seconds of ``roots`` and their children (nginx workers, PostgreSQL backends)."""
    parents = {int(d): st[0] for d in os.listdir("/proc") if d.isdigit()
               if (st := _stat(int(d))) is not None}
    members = set(roots) | {pid for pid, parent in parents.items() if parent in roots}
    return sum(st[1] for pid in members if (st := _stat(pid)) is not None)


def server_processes(box: OpBox) -> dict[str, list[int]]:
    """The process trees serving the site: backend instances, nginx, PostgreSQL."""
    from tests.e2e_support import postgres_dir

    postmaster = Path(postgres_dir(SLOT.address)) / "data" / "postmaster.pid"
    return {"backend": [a["pid"] for a in box.pm2_apps().values()],
            "nginx": [pid] if (pid := box.nginx_pid()) else [],
            "postgres": [int(postmaster.read_text().split()[0])] if postmaster.is_file() else []}


def secrets(box: OpBox) -> dict[str, str]:
    from adapto_ops.inventory.secrets import parse_dotenv

    return parse_dotenv((box.base / ".adapto" / "secrets.env").read_text())


def tls_context(box: OpBox) -> ssl.SSLContext:
    """Verify the site's certificate with the sandbox's own CA, as a browser would."""
    ca_file = box.data["environments"]["op"]["health"]["ca_file"].replace("{host}", "sandbox1")
    return ssl.create_default_context(cafile=ca_file)


def prepare(box: OpBox, probe: dict[str, str], tls: ssl.SSLContext) -> tuple[str, str]:
    """Sign up, make dialogs with a few messages; (bearer token, a dialog id)."""
    api = httpx.Client(base_url=f"https://{SLOT.address}:{SLOT.https_port}",
                       headers={"Host": SERVER_NAME, **probe}, verify=tls, timeout=30,
                       trust_env=False)
    with api:
        email = f"bench-{int(time.time())}@adapto.test"
        signup = api.post("/api/auth/signup", json={"email": email,
                                                    "password": "benchmark password 1"},
                          extensions={"sni_hostname": SERVER_NAME})
        if signup.status_code != 201:
            raise SystemExit(f"signup failed: HTTP {signup.status_code} {signup.text[:200]}")
        auth = {"Authorization": f"Bearer {signup.json()['access_token']}"}
        project = api.get("/api/projects", headers=auth,
                          extensions={"sni_hostname": SERVER_NAME}).json()["items"][0]["id"]
        dialog = ""
        for i in range(DIALOGS):
            made = api.post("/api/dialogs", headers=auth, json={"project_id": project,
                                                                "title": f"bench {i}"},
                            extensions={"sni_hostname": SERVER_NAME})
            if made.status_code != 201:
                raise SystemExit(f"creating a dialog failed: HTTP {made.status_code} "
                                 f"{made.text[:200]}")
            dialog = made.json()["id"]
        for i in range(3):
            api.post(f"/api/chat/{dialog}/messages", headers=auth,
                     json={"content": f"hello {i}"}, extensions={"sni_hostname": SERVER_NAME})
        return auth["Authorization"], dialog


def scenarios(bearer: str, dialog: str, probe: dict[str, str]) -> list[Scenario]:
    body = json.dumps({"content": "How do I deploy the platform?"}).encode()
    authed = {**probe, "Authorization": bearer}
    return [
        Scenario("static (nginx ceiling)", "GET", STATIC_PATH, headers=dict(probe)),
        Scenario("GET /api/health", "GET", "/api/health", headers=dict(probe)),
        Scenario("GET /api/dialogs (auth)", "GET", "/api/dialogs?limit=20", headers=authed),
        Scenario("POST message (auth)", "POST", f"/api/chat/{dialog}/messages", expect=201,
                 headers={**authed, "Content-Type": "application/json"}, body=body),
    ]


def verdict(figures: Figures, read: bool) -> str:
    misses = []
    if figures.failed:
        misses.append("errors")
    if read and figures.percentile_ms(99) >= READ_P99_TARGET_MS:
        misses.append(f"p99 >= {READ_P99_TARGET_MS:.0f} ms")
    return "MISS: " + ", ".join(misses) if misses else "ok"


Result = tuple[Figures, bool, dict[str, float]]


def run_pass(load: Load, plan: list[Scenario], trees: dict[str, list[int]],
             args: argparse.Namespace, rates: dict[str, float | None]) -> list[Result]:
    """Each scenario in turn at its rate (None: flat out), with the server CPU it used."""
    results: list[Result] = []
    for scenario in plan:
        before = {name: tree_cpu_s(pids) for name, pids in trees.items()}
        figures = load.run(scenario, connections=args.connections, seconds=args.seconds,
                           max_requests=args.max_requests, rate=rates[scenario.label])
        # Server CPU per request (warm-up second included, so a little high): what the
        # figures would be on an idle machine, independent of other load on it.
        used = {name: (tree_cpu_s(pids) - before[name]) * 1000 / max(1, figures.total)
                for name, pids in trees.items()}
        results.append((figures, scenario.method == "GET" and "/api/" in scenario.path, used))
        print(f"  {scenario.label}: {figures.total} requests in {figures.duration_s:.1f} s",
              file=sys.stderr, flush=True)
    return results


def print_pass(title: str, results: list[Result], rates: dict[str, float | None]) -> bool:
    """The pass's table; True when every scenario met its target."""
    print(f"\n{title}")
    print(f"{'scenario':<26} {'paced at':>8} {'requests':>8} {'req/s':>8} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7} {'errors':>6} {'gen cpu':>7}  verdict")
    met = True
    for figures, read, _ in results:
        v = verdict(figures, read)
        met &= v == "ok"
        errors = ", ".join(f"{k}: {n}" for k, n in figures.errors.most_common())
        gen = 100 * figures.cpu_s / (figures.duration_s + 1.0)  # warm-up second included
        rate = rates[figures.label]
        paced = f"{rate:.0f}/s" if rate else "-"
        print(f"{figures.label:<26} {paced:>8} {figures.total:>8} {figures.rps:>8.0f} "
              f"{figures.percentile_ms(50):>7.1f} {figures.percentile_ms(99):>7.1f} "
              f"{max(figures.latencies_ms, default=0):>7.1f} {figures.failed:>6} "
              f"{gen:>6.0f}%  {v}{' (' + errors + ')' if errors else ''}")
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0, help="per scenario and pass")
    parser.add_argument("--max-requests", type=int, default=200_000, help="per scenario")
    parser.add_argument("--rate", type=float, default=None, metavar="R",
                        help="the paced pass at R req/s in total for every scenario "
                             "(default: --paced-fraction of each one's flat-out req/s)")
    parser.add_argument("--paced-fraction", type=float, default=0.5, metavar="F",
                        help="pace each scenario at F x its flat-out req/s (default 0.5; "
                             "0 skips the paced pass)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a target is missed in every pass")
    args = parser.parse_args()
    load_before = os.getloadavg()
    passes: list[tuple[str, list[Result], dict[str, float | None]]] = []
    with tempfile.TemporaryDirectory(prefix="adapto-bench-backend-") as tmp, \
            deployed_sandbox(Path(tmp), SLOT) as box:
        probe = {"X-Adapto-Probe": secrets(box)["ADAPTO_PROBE_TOKEN"]}
        tls = tls_context(box)
        bearer, dialog = prepare(box, probe, tls)
        load = Load(SLOT.address, SLOT.https_port, SERVER_NAME, tls)
        trees = server_processes(box)
        plan = scenarios(bearer, dialog, probe)
        flat: dict[str, float | None] = {sc.label: None for sc in plan}
        print("flat out:", file=sys.stderr, flush=True)
        passes.append(("flat out (capacity; latency is queueing: ~connections / req/s)",
                       run_pass(load, plan, trees, args, flat), flat))
        if args.rate or args.paced_fraction > 0:
            capacity = {f.label: f.rps for f, _, _ in passes[0][1]}
            paced: dict[str, float | None] = {
                sc.label: args.rate or max(1.0, args.paced_fraction * capacity[sc.label])
                for sc in plan}
            how = (f"{args.rate:.0f} req/s" if args.rate
                   else f"{args.paced_fraction:.0%} of each scenario's flat-out req/s")
            print("paced:", file=sys.stderr, flush=True)
            passes.append((f"paced at {how} (latency at that load)",
                           run_pass(load, plan, trees, args, paced), paced))
    load_after = os.getloadavg()
    print(f"\nload average (1 min) before {load_before[0]:.1f}, after {load_after[0]:.1f}: "
          "anything else running on the machine shows in these figures")
    print(f"through nginx over TLS to uvicorn (uvloop + httptools), two instances, "
          f"{args.connections} keep-alive connections, closed loop, {args.seconds:.0f} s per "
          f"scenario and pass, {os.cpu_count()} cores (the generator shares them)")
    met = {title: print_pass(title, results, rates) for title, results, rates in passes}
    print("\nserver CPU per request, flat-out pass (ms; backend = both instances, "
          "nginx = master + workers, postgres = all its processes):")
    for figures, _, used in passes[0][1]:
        print(f"  {figures.label:<26} " + "  ".join(f"{k} {v:5.2f}" for k, v in used.items()))
    print(f"\ntarget: p99 < {READ_P99_TARGET_MS:.0f} ms for the reads (health, dialogs) and "
          f"0 errors everywhere, at {args.connections} connections")
    for title, ok in met.items():
        print(f"  {'MET   ' if ok else 'MISSED'} {title.split(' (')[0]}")
    return 1 if args.strict and not any(met.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
