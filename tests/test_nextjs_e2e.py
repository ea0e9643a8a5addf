"""The real Next.js backend, deployed the runbook's way, end to end.

reference/nextjs-backend (`next` from npm, App Router, /api/health and POST
/api/messages) goes to a private sandbox on 127.0.0.181 (sshd 2181, nginx HTTP
8181 / HTTPS 8481, instances 3181/3182) as `backend.kind: node`: install
`npm ci`, build `npm run build` (= `next build`), start `npm start` (= `next
start`), two PM2 instances behind nginx. `npm ci` really runs on the host; npm's
cache is a persistent folder (CACHE) so a second run downloads nothing.

The tests run in file order and build on one another (one sandbox, one history):
1. first deploy: dependencies installed, `.next` built in the release, served;
2. a changed route deployed under GET+POST load: 0 failed GETs, POST failures
   counted (and no message recorded twice); the previous release's `.next`
   untouched; `node_modules` reused by hash, no `npm ci`;
3. rollback under load: the previous release answers, 0 failed GETs;
3b. `pm2 delete` of an instance: `next start` finishes its in-flight request;
4. the same sources again (--force): `next build` does not run, the build of
   the release built from them is copied in (never linked).
Figures go to stdout (`pytest -s`) and to FIGURES as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapto_ops.deploy.manifest import dependency_hash
from tests.e2e_support import (
    REPO,
    Cli,
    SandboxBox,
    adapto,
    events,
    run_to_files,
    said,
    sandbox_marks,
    sandbox_up,
)
from tests.nextjs_load import Figures, MixedLoad
from tests.node_support import node_inventory_data

SOURCE = REPO / "reference" / "nextjs-backend"
CACHE = Path("/var/tmp/adapto-e2e-nextjs-cache")  # npm's cache, kept between runs
FIGURES = CACHE / "figures.json"
ENV, HOST, ADDRESS = "nextjs-e2e", "sandbox1", "127.0.0.181"
SSH_PORT, HTTP_PORT, HTTPS_PORT = 2181, 8181, 8481
PORTS = (3181, 3182)
SERVER_NAME = "nextjs-e2e.adapto.test"
INSTALL = f"npm ci --no-audit --no-fund --prefer-offline --cache {CACHE}/npm"
ORIGIN = f"https://{ADDRESS}:{HTTPS_PORT}"

pytestmark = [pytest.mark.e2e, pytest.mark.slow, *sandbox_marks(("npm",))]


def registry_reachable() -> str | None:
    """Why `npm ci` cannot get `next` here (None: it can, from the registry or the cache)."""
    lock = json.loads((SOURCE / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/next"]["version"]
    result = run_to_files(["npm", "view", f"next@{version}", "version", "--prefer-offline",
                           "--cache", f"{CACHE}/npm"], dict(os.environ), 60)
    return None if result.stdout.strip() == version else (
        f"npm registry unreachable and next@{version} not in {CACHE}/npm: "
        f"{(result.stderr.strip().splitlines() or ['no output'])[-1]}")


# --- the sandbox ------------------------------------------------------------------------


@dataclass
class Box(SandboxBox):
    releases: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.base / HOST / "app"

    def release_dir(self, release: str) -> Path:
        return self.root / "releases" / release / "backend"

    def deploy(self, *extra: str) -> Cli:
        return adapto("deploy", "all", "-e", ENV, "-i", str(self.inventory), "--yes",
                      "--skip-build", "--json", *extra, timeout=900)

    def deps_hash(self) -> str:
        return dependency_hash(self.backend, ["package.json", "package-lock.json"], INSTALL)

    def record(self, name: str, value: Any) -> None:
        self.figures[name] = value
        print(f"\nFIGURE {name}: {value}")
        FIGURES.write_text(json.dumps(self.figures, indent=1) + "\n")


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    CACHE.mkdir(parents=True, exist_ok=True)
    if why := registry_reachable():
        pytest.skip(why)
    base = tmp_path_factory.mktemp("nx")  # short: PM2's rpc.sock path must stay < 108 bytes
    shutil.copytree(SOURCE, base / "backend",
                    ignore=shutil.ignore_patterns("node_modules", ".next", "messages.jsonl"))
    dist = base / "frontend" / "dist"
    dist.mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>adapto nextjs e2e</title>\n")
    sandbox = Box(base, node_inventory_data(
        base, env_name=ENV, host=HOST, address=ADDRESS, ssh_port=SSH_PORT, http_port=HTTP_PORT,
        https_port=HTTPS_PORT, ports=PORTS, server_name=SERVER_NAME, install=INSTALL,
        description="tests/test_nextjs_e2e.py: a throw-away sandbox, Next.js backend",
        start_timeout_s=30.0, backend_extra={"memory_limit": "512M"},
        # The load below is one client address: the per-address API
        # limit (20 r/s) would answer it 429s, which are not restarts.
        nginx_extra={"rate_limits": {"api": {"rate": "2000r/s", "burst": 4000}}}))
    with sandbox_up(sandbox, ENV):
        yield sandbox


# --- looking -------------------------------------------------------------------------------


def step_events(result: Cli, step: str) -> list[dict[str, Any]]:
    return [e for e in events(result) if e.get("step") == step and e.get("host") == HOST]


def seconds(result: Cli, step: str) -> float | None:
    done = [e for e in step_events(result, step) if e["kind"] == "ok" and "elapsed_s" in e]
    return round(done[0]["elapsed_s"], 1) if done else None


def step_times(result: Cli) -> dict[str, float]:
    """Seconds of each finished step on our host (repeated steps summed): where time goes."""
    times: Counter[str] = Counter()
    for event in events(result):
        if event.get("host") == HOST and event["kind"] == "ok" and "elapsed_s" in event:
            times[event["step"]] += event["elapsed_s"]
    return {step: round(s, 1) for step, s in times.items()}


def get(url: str, *, site: bool = True) -> dict[str, Any]:
    response = httpx.get(url, headers={"Host": SERVER_NAME} if site else {}, verify=False,
                         timeout=10, trust_env=False)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:300]}"
    return dict(response.json())


def current(box: Box) -> str:
    return Path(os.readlink(box.root / "current")).name


def release_ids(box: Box) -> list[str]:
    return sorted(p.name for p in (box.root / "releases").iterdir())


def new_release(box: Box, before: list[str]) -> str:
    added = sorted(set(release_ids(box)) - set(before))
    assert len(added) == 1, f"expected one new release, got {added}"
    box.releases.append(added[0])
    return added[0]


def build_id(box: Box, release: str) -> str:
    return (box.release_dir(release) / ".next" / "BUILD_ID").read_text().strip()


def build_identity(box: Box, release: str) -> tuple[str, int, int, int]:
    """BUILD_ID, its inode and mtime, and the inode of .next itself."""
    path = box.release_dir(release) / ".next" / "BUILD_ID"
    info = path.stat()
    return (path.read_text(), info.st_ino, info.st_mtime_ns,
            (box.release_dir(release) / ".next").stat().st_ino)


def assert_serving(box: Box, release: str) -> dict[str, Any]:
    """nginx and both instances answer from ``release`` with its own `next build`."""
    assert current(box) == release
    build = build_id(box, release)
    body = get(f"{ORIGIN}/api/health")
    assert (body["status"], body["release"], body["build"]) == ("ok", release, build), body
    for port in PORTS:
        one = get(f"http://{ADDRESS}:{port}/api/health", site=False)
        assert (one["release"], one["build"], one["port"]) == (release, build, port), one
    return body


def assert_shared_deps(box: Box, release: str) -> None:
    link = box.release_dir(release) / "node_modules"
    assert link.is_symlink()
    shared = box.root / "shared" / "deps" / box.deps_hash() / "node_modules"
    assert Path(os.readlink(link)) == shared
    assert (link / "next" / "package.json").is_file()


def messages(box: Box) -> Counter[str]:
    """client_id -> how many times the backends recorded it."""
    path = box.root / "shared" / "messages.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return Counter(json.loads(line)["client_id"] for line in lines)


def check_posts(box: Box, figures: Figures, label: str) -> None:
    """Every 201 recorded exactly once; none recorded twice; failures reported as they are."""
    seen = messages(box)
    missing = [c for c in figures.post.accepted if seen[c] != 1]
    assert missing == [], f"{label}: 201s not recorded once: {missing[:5]}"
    twice = [c for c, n in seen.items() if n > 1]
    assert twice == [], f"{label}: processed twice: {twice[:5]}"
    processed = sum(1 for c in figures.post.failed_ids if seen[c])
    box.record(f"{label}_posts", {"sent": figures.post.total, "failed": figures.post.failed,
                                  "kinds": figures.post.kinds(),
                                  "failed_but_processed": processed})


def under_load(box: Box, label: str, action: Any) -> tuple[Cli, Figures, float]:
    with MixedLoad(ORIGIN, SERVER_NAME, get_connections=8, post_connections=4, rate=80,
                   max_seconds=300) as load:
        time.sleep(1.0)
        started = time.perf_counter()
        result = action()
        took = time.perf_counter() - started
        time.sleep(1.0)
    figures = load.figures
    box.record(f"{label}_load", figures.line())
    return result, figures, took


# --- 1. first deploy ------------------------------------------------------------------------


@pytest.mark.timeout(600)
def test_first_deploy_runs_npm_ci_next_build_and_npm_start(box: Box) -> None:
    started = time.perf_counter()
    result = box.deploy()
    took = time.perf_counter() - started
    assert result.returncode == 0, said(result)
    release = new_release(box, [])
    assert [e for e in events(result) if e["kind"] == "fail"] == []
    deps = [e for e in step_events(result, "deps") if e["kind"] == "ok"]
    assert deps and INSTALL in deps[0]["message"], step_events(result, "deps")
    build = [e for e in step_events(result, "build") if e["kind"] == "ok"]
    assert build and "npm run build" in build[0]["message"], step_events(result, "build")
    box.record("first_deploy", {"total_s": round(took, 1), "npm_ci_s": seconds(result, "deps"),
                                "next_build_s": seconds(result, "build"),
                                "steps": step_times(result)})

    backend = box.release_dir(release)
    next_dir = backend / ".next"
    assert next_dir.is_dir() and not next_dir.is_symlink()
    assert (next_dir / "BUILD_ID").is_file() and (next_dir / "server" / "app").is_dir()
    body = assert_serving(box, release)
    assert "variant" not in body
    assert_shared_deps(box, release)

    # `npm start` under PM2, from the release's own folder, one app per port.
    home = box.base / HOST / "pm2"
    jlist = run_to_files(["pm2", "jlist"], {**os.environ, "PM2_HOME": str(home)}, 30)
    apps = {a["name"]: a["pm2_env"] for a in json.loads(
        next(ln for ln in jlist.stdout.splitlines() if ln.startswith("[")))}
    name = box.data["environments"][ENV]["backend"]["name"]
    assert set(apps) == {f"{name}-{p}" for p in PORTS}
    for port in PORTS:
        app = apps[f"{name}-{port}"]
        assert Path(app["pm_exec_path"]).name == "npm" and app["args"] == ["start"]
        assert Path(app["pm_cwd"]) == backend.resolve() and app["status"] == "online"

    # The POST route: validated, 201 with an id, recorded once in the shared file.
    client = httpx.Client(verify=False, timeout=10, trust_env=False,
                          headers={"Host": SERVER_NAME})
    bad = client.post(f"{ORIGIN}/api/messages", json={"text": ""})
    assert bad.status_code == 400 and bad.json()["error"].startswith("text:")
    good = client.post(f"{ORIGIN}/api/messages", json={"text": "hello", "client_id": "first"})
    assert good.status_code == 201 and good.json()["release"] == release, good.text
    assert messages(box) == Counter({"first": 1})


# --- 2. a changed route, rolled out under load ---------------------------------------------------


@pytest.mark.timeout(600)
def test_changed_route_rolls_out_under_load_with_no_failed_get(box: Box) -> None:
    assert len(box.releases) == 1, "runs after test 1"
    previous = box.releases[-1]
    before_build = build_identity(box, previous)
    route = box.backend / "app" / "api" / "health" / "route.js"
    text = route.read_text()
    assert "node: process.version," in text
    route.write_text(text.replace("node: process.version,", "node: process.version,\n"
                                  "    variant: 2,"))

    before = release_ids(box)
    result, figures, took = under_load(box, "deploy", box.deploy)
    assert result.returncode == 0, said(result)
    release = new_release(box, before)
    body = assert_serving(box, release)
    assert body["variant"] == 2
    box.record("changed_route_deploy", {"total_s": round(took, 1),
                                        "steps": step_times(result)})

    assert figures.get.failed == 0, figures.line()
    assert figures.get.releases[previous] > 0 and figures.get.releases[release] > 0, figures.line()
    check_posts(box, figures, "deploy")

    # A new build in the new release; the previous release's .next untouched.
    assert [e for e in step_events(result, "build") if e["kind"] == "ok"]
    assert build_identity(box, previous) == before_build
    assert build_id(box, release) != before_build[0].strip()
    assert build_identity(box, release)[1] != before_build[1]
    assert (box.release_dir(previous) / ".next" / "BUILD_ID").stat().st_nlink == 1
    # Same package-lock.json: no `npm ci`, the same shared node_modules.
    assert step_events(result, "deps") == []
    assert_shared_deps(box, release)
    assert os.readlink(box.release_dir(release) / "node_modules") == os.readlink(
        box.release_dir(previous) / "node_modules")
    assert sorted(p.name for p in (box.root / "shared" / "deps").iterdir()) == [box.deps_hash()]


# --- 3. rollback under load --------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_rollback_under_load_serves_the_previous_release(box: Box) -> None:
    assert len(box.releases) == 2, "runs after test 2"
    first, second = box.releases
    first_build = build_identity(box, first)

    def rollback() -> Cli:
        return adapto("rollback", "-e", ENV, "-i", str(box.inventory), "--yes", "--json",
                      timeout=300)

    result, figures, took = under_load(box, "rollback", rollback)
    assert result.returncode == 0, said(result)
    body = assert_serving(box, first)
    assert "variant" not in body
    assert build_identity(box, first) == first_build
    box.record("rollback", {"total_s": round(took, 1), "steps": step_times(result)})
    assert figures.get.failed == 0, figures.line()
    assert figures.get.releases[second] > 0 and figures.get.releases[first] > 0, figures.line()
    check_posts(box, figures, "rollback")


# --- 3b. PM2 stopping an instance lets `next start` finish what it accepted ---------------


@pytest.mark.timeout(120)
def test_stopped_instance_finishes_its_in_flight_request(box: Box) -> None:
    """PM2's SIGINT (kill_timeout 8 s here) reaches `next start` through `npm start`, and
    next drains: a 3 s request sent before `pm2 delete` still answers 201, recorded once."""
    import threading

    name = f"{box.data['environments'][ENV]['backend']['name']}-{PORTS[0]}"
    answer: dict[str, Any] = {}

    def slow_post() -> None:
        started = time.perf_counter()
        try:
            response = httpx.post(f"http://{ADDRESS}:{PORTS[0]}/api/messages", timeout=20,
                                  trust_env=False, json={"text": "slow", "client_id": "drain",
                                                         "delay_ms": 3000})
            answer.update(status=response.status_code, body=response.json())
        except httpx.HTTPError as exc:
            answer["error"] = repr(exc)
        answer["seconds"] = time.perf_counter() - started

    sender = threading.Thread(target=slow_post)
    sender.start()
    time.sleep(0.7)  # the request is in the handler's 3 s wait
    started = time.perf_counter()
    env = {**os.environ, "PM2_HOME": str(box.base / HOST / "pm2")}
    stop = run_to_files(["pm2", "delete", name], env, 60)
    stopped_after = time.perf_counter() - started
    sender.join(30)
    assert stop.returncode == 0, said(stop)
    assert answer.get("status") == 201, answer
    assert answer["seconds"] >= 2.9 and stopped_after >= 1.5, (answer, stopped_after)
    assert messages(box)["drain"] == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://{ADDRESS}:{PORTS[0]}/api/health", timeout=5, trust_env=False)
    box.record("drain", {"in_flight_answer_s": round(answer["seconds"], 1),
                         "pm2_delete_s": round(stopped_after, 1)})


# --- 4. the same sources again: the build cache covers `next build` ------------------------


@pytest.mark.timeout(300)
def test_same_sources_again_reuse_the_build_as_a_copy(box: Box) -> None:
    assert len(box.releases) == 2 and current(box) == box.releases[0], "runs after test 3"
    first, second = box.releases
    second_build = build_identity(box, second)
    first_build = build_identity(box, first)

    # The local sources are still the second release's; `current` is the first one's.
    before = release_ids(box)
    started = time.perf_counter()
    result = box.deploy("--force")
    took = time.perf_counter() - started
    assert result.returncode == 0, said(result)
    release = new_release(box, before)

    builds = step_events(result, "build")
    assert [e["kind"] for e in builds] == ["ok"], builds  # no "start": nothing was run
    assert builds[0]["message"].startswith("cached (key "), builds
    assert builds[0]["data"]["from"] == second, builds
    assert step_events(result, "deps") == []
    box.record("cached_build_deploy", {"total_s": round(took, 1), "event": builds[0]["message"],
                                       "steps": step_times(result)})

    body = assert_serving(box, release)
    assert body["variant"] == 2 and body["build"] == second_build[0].strip()
    # A copy: the new release's .next is its own; neither older build was touched.
    mine = build_identity(box, release)
    assert mine[0] == second_build[0] and mine[1] != second_build[1] and mine[3] != second_build[3]
    assert build_identity(box, second) == second_build
    assert build_identity(box, first) == first_build
    meta = json.loads((box.root / "releases" / release / ".adapto-release.json").read_text())
    assert meta["build_from"] == second and meta["build_key"] == json.loads(
        (box.root / "releases" / second / ".adapto-release.json").read_text())["build_key"]
    assert_shared_deps(box, release)
