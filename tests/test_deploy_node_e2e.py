"""The production path of a Node backend, end to end: `npm ci`, `npm run build`, `npm start`.

The platform's real backend is Next.js (inventory.yaml, `production`: kind node,
install `npm ci`, build `npm run build`, start `npm start`). This module takes
that path against a private sandbox: sshd, nginx and PM2 on 127.0.0.33, SSH
port 2333, HTTP 8333, HTTPS 8443, instances on 3333/3334, every folder under a
pytest temporary folder, brought down with --purge when the module ends.

What is deployed: a copy of tests/fixtures/node-backend, a dependency-free Node
app (so `npm ci` installs nothing and needs no network) whose `npm run build`
writes dist-server/build.json in place, the way `next build` writes .next/, and
whose server reports the release and the build stamp it runs; plus a tiny
hand-written frontend dist shipped with --skip-build.

The tests run in file order and build on one another (one sandbox, one release
history): first deploy, a changed server.js (a new build, the previous release's
build untouched, dependencies reused), a changed package.json (a new dependency
install), and a rollback. Run them as a file, not one by one.
"""

from __future__ import annotations

import json
import os
import shutil
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
from tests.node_support import node_inventory_data

FIXTURE = REPO / "tests" / "fixtures" / "node-backend"
ENV = "node-e2e"
HOST = "sandbox1"
ADDRESS = "127.0.0.33"
SSH_PORT = 2333
HTTP_PORT, HTTPS_PORT = 8333, 8443
PORTS = (3333, 3334)
SERVER_NAME = "node-e2e.adapto.test"
INSTALL = "npm ci --no-audit --no-fund"
START_TIMEOUT_S = 20.0  # health.instance_start_timeout_s: `npm start` is slower than node alone



pytestmark = [pytest.mark.e2e, *sandbox_marks(("npm",))]


# --- running things -------------------------------------------------------------------


def steps(result: Cli, kind: str = "ok") -> dict[str, list[str]]:
    """step -> messages of the events of ``kind`` (on our host)."""
    found: dict[str, list[str]] = {}
    for event in events(result):
        if event.get("kind") == kind and event.get("host") == HOST:
            found.setdefault(event["step"], []).append(str(event.get("message", "")))
    return found


# --- the sandbox ----------------------------------------------------------------------


INDEX_HTML = (
    "<!doctype html>\n<html><head><title>adapto node e2e</title>\n"
    '<script type="module" src="/assets/index-node0001.js"></script></head>\n'
    '<body><div id="root"></div></body></html>\n'
)


@dataclass
class Box(SandboxBox):
    """Our sandbox, its inventory, the local sources, and what the tests saw so far."""

    releases: list[str] = field(default_factory=list)  # deployed by the tests, in order
    stamps: dict[str, str] = field(default_factory=dict)  # release -> build stamp
    build_texts: dict[str, str] = field(default_factory=dict)  # release -> build.json text

    @property
    def backend_name(self) -> str:
        return str(self.data["environments"][ENV]["backend"]["name"])

    @property
    def sdir(self) -> Path:
        return self.base / HOST

    @property
    def root(self) -> Path:
        return self.sdir / "app"

    @property
    def deps(self) -> Path:
        return self.root / "shared" / "deps"

    def release_dir(self, release: str) -> Path:
        return self.root / "releases" / release

    def build_json(self, release: str) -> Path:
        return self.release_dir(release) / "backend" / "dist-server" / "build.json"

    def deploy(self) -> Cli:
        return adapto("deploy", "all", "-e", ENV, "-i", str(self.inventory), "--yes",
                      "--skip-build", "--json")

    def local_deps_hash(self) -> str:
        """The hash adapto computes for the local backend's package.json + package-lock.json."""
        return dependency_hash(self.backend, ["package.json", "package-lock.json"], INSTALL)


def write_sources(base: Path) -> None:
    shutil.copytree(FIXTURE, base / "backend",
                    ignore=shutil.ignore_patterns("node_modules", "dist-server", "RELEASE"))
    assets = base / "frontend" / "dist" / "assets"
    assets.mkdir(parents=True)
    (assets / "index-node0001.js").write_text("document.title = 'adapto node e2e';\n")
    (base / "frontend" / "dist" / "index.html").write_text(INDEX_HTML)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    base = tmp_path_factory.mktemp("node")  # short: PM2's rpc.sock path must stay < 108 bytes
    write_sources(base)
    sandbox = Box(base, node_inventory_data(
        base, env_name=ENV, host=HOST, address=ADDRESS, ssh_port=SSH_PORT, http_port=HTTP_PORT,
        https_port=HTTPS_PORT, ports=PORTS, server_name=SERVER_NAME, install=INSTALL,
        description="tests/test_deploy_node_e2e.py: a throw-away sandbox, Node backend",
        start_timeout_s=START_TIMEOUT_S))
    with sandbox_up(sandbox, ENV):
        yield sandbox
    assert not sandbox.sdir.exists(), f"--purge left {sandbox.sdir}"


# --- looking at the host ------------------------------------------------------------


def fetch(url: str, *, host_header: bool = True) -> httpx.Response:
    headers = {"Host": SERVER_NAME} if host_header else {}
    return httpx.get(url, headers=headers, verify=False, timeout=10, trust_env=False)


def site_health() -> dict[str, Any]:
    """/api/health through nginx over TLS; must answer 200."""
    response = fetch(f"https://{ADDRESS}:{HTTPS_PORT}/api/health")
    assert response.status_code == 200, f"{response.status_code} {response.text[:300]}"
    return dict(response.json())


def instance_health(port: int) -> dict[str, Any]:
    response = fetch(f"http://{ADDRESS}:{port}/api/health", host_header=False)
    assert response.status_code == 200, f"{port}: {response.status_code} {response.text[:300]}"
    return dict(response.json())


def current(box: Box) -> str | None:
    link = box.root / "current"
    return Path(os.readlink(link)).name if link.is_symlink() else None


def release_ids(box: Box) -> list[str]:
    folder = box.root / "releases"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def new_release(box: Box, before: list[str]) -> str:
    added = sorted(set(release_ids(box)) - set(before))
    assert len(added) == 1, f"expected one new release, got {added}"
    return added[0]


def meta(box: Box, release: str) -> dict[str, Any]:
    return dict(json.loads((box.release_dir(release) / ".adapto-release.json").read_text()))


def stamp_of(box: Box, release: str) -> str:
    return str(json.loads(box.build_json(release).read_text())["stamp"])


def history(box: Box) -> list[dict[str, Any]]:
    path = box.root / ".adapto" / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def pm2_apps(box: Box) -> dict[str, dict[str, Any]]:
    """`PM2_HOME=<sandbox>/pm2 pm2 jlist`: name -> the app's pm2_env (plus its pid)."""
    home = box.sdir / "pm2"
    pid = int((home / "pm2.pid").read_text().split()[0])
    os.kill(pid, 0)  # the daemon runs: jlist will not start a new one
    result = run_to_files(["pm2", "jlist"], {**os.environ, "PM2_HOME": str(home)}, 30)
    assert result.returncode == 0, said(result)
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("["))
    return {app["name"]: {**app["pm2_env"], "pid": app["pid"]} for app in json.loads(line)}


def ancestors(pid: int, depth: int = 6) -> list[int]:
    """Parent, grandparent, ... of ``pid`` from /proc."""
    chain = []
    for _ in range(depth):
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        if pid <= 1:
            break
        chain.append(pid)
    return chain


def assert_serving(box: Box, release: str) -> dict[str, Any]:
    """`current`, nginx, every instance and PM2 agree that ``release`` runs, with its own
    build, started by `npm start` from the release's own folder. Returns the site health."""
    assert current(box) == release
    stamp = stamp_of(box, release)
    body = site_health()
    assert (body["status"], body["release"], body["build"]) == ("ok", release, stamp), body
    assert body["node"].startswith("v")
    apps = pm2_apps(box)
    assert set(apps) == {f"{box.backend_name}-{port}" for port in PORTS}
    backend = (box.release_dir(release) / "backend").resolve()
    for port in PORTS:
        instance = instance_health(port)
        assert (instance["release"], instance["build"], instance["port"]) == (
            release, stamp, port), instance
        app = apps[f"{box.backend_name}-{port}"]
        assert app["status"] == "online", app["status"]
        # `npm start`, as the runbook starts the Next.js backend: script npm, args [start].
        assert Path(app["pm_exec_path"]).name == "npm", app["pm_exec_path"]
        assert app["args"] == ["start"], app["args"]
        assert app["env"]["PORT"] == str(port)
        # The release's own folder, resolved: PM2 must not run from the `current` symlink.
        assert Path(app["pm_cwd"]) == backend, app["pm_cwd"]
        assert "current" not in Path(app["pm_cwd"]).parts
        # The server answering on the port is a child of PM2's `npm start` process.
        assert app["pid"] in ancestors(int(instance["pid"])), (app["pid"], instance["pid"])
    return body


def assert_linked_deps(box: Box, release: str, deps_hash: str) -> None:
    """The release's node_modules is the shared install for ``deps_hash``."""
    backend = box.release_dir(release) / "backend"
    link = backend / "node_modules"
    assert link.is_symlink(), f"{link} is not a symlink"
    assert Path(os.readlink(link)) == box.deps / deps_hash / "node_modules"
    assert (box.deps / deps_hash / ".adapto-ready").is_file()
    assert meta(box, release)["deps_hash"] == deps_hash
    assert Path(os.readlink(backend / ".env")) == box.root / "shared" / ".env"


# --- 1. first deploy -------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_first_deploy_installs_builds_and_starts_with_npm(box: Box) -> None:
    assert release_ids(box) == [] and current(box) is None
    result = box.deploy()
    assert result.returncode == 0, said(result)
    release = new_release(box, [])
    box.releases.append(release)
    box.stamps[release] = stamp_of(box, release)
    box.build_texts[release] = box.build_json(release).read_text()

    ok = steps(result)
    assert "deps" in ok and INSTALL in ok["deps"][0], ok
    assert "build" in ok and "npm run build" in ok["build"][0], ok
    assert [e for e in events(result) if e["kind"] == "fail"] == []

    assert_serving(box, release)
    deps_hash = box.local_deps_hash()
    assert_linked_deps(box, release, deps_hash)
    # `npm ci` ran in the shared folder, from the release's manifest files.
    for name in ("package.json", "package-lock.json"):
        assert (box.deps / deps_hash / name).read_bytes() == (box.backend / name).read_bytes()
    assert sorted(p.name for p in box.deps.iterdir()) == [deps_hash]

    # Built on the host, in the release: not shipped (the local copy has no build).
    assert not (box.backend / "dist-server").exists()
    assert (box.release_dir(release) / "backend" / "RELEASE").read_text().strip() == release
    page = fetch(f"https://{ADDRESS}:{HTTPS_PORT}/")
    assert page.status_code == 200 and page.text == INDEX_HTML
    missing = fetch(f"https://{ADDRESS}:{HTTPS_PORT}/api/nosuch")
    assert missing.status_code == 404 and missing.json()["path"] == "/api/nosuch"

    assert (history(box)[-1]["release"], history(box)[-1]["result"]) == (release, "ok")
    assert (box.release_dir(release) / ".adapto-complete").exists()
    assert (box.release_dir(release) / ".adapto-live").exists()


# --- 2. changed server.js: a new build, the previous one untouched ----------------------


@pytest.mark.timeout(60)
def test_changed_server_builds_anew_and_previous_build_is_untouched(box: Box) -> None:
    assert len(box.releases) == 1, "runs after test 1"
    previous = box.releases[-1]
    server = box.backend / "server.js"
    text = server.read_text()
    assert "node: process.version}" in text
    server.write_text(text.replace("node: process.version}", "node: process.version, variant: 2}"))

    before = release_ids(box)
    result = box.deploy()
    assert result.returncode == 0, said(result)
    release = new_release(box, before)
    box.releases.append(release)
    box.stamps[release] = stamp_of(box, release)
    box.build_texts[release] = box.build_json(release).read_text()

    body = assert_serving(box, release)
    assert body["variant"] == 2
    assert box.stamps[release] != box.stamps[previous]

    # The build rewrote dist-server/build.json in place in the new release; the
    # previous release kept its own file (a real copy, not a hard link).
    old_file, new_file = box.build_json(previous), box.build_json(release)
    assert old_file.read_text() == box.build_texts[previous]
    assert stamp_of(box, previous) == box.stamps[previous]
    assert old_file.stat().st_ino != new_file.stat().st_ino
    assert old_file.stat().st_nlink == 1 and new_file.stat().st_nlink == 1
    old_server = box.release_dir(previous) / "backend" / "server.js"
    assert "variant" not in old_server.read_text()
    assert (box.release_dir(previous) / "backend" / "RELEASE").read_text().strip() == previous

    # Same dependency files: the shared install is reused, nothing installed again.
    ok = steps(result)
    assert "deps" not in ok, ok
    assert "deps" not in {e["step"] for e in events(result)}
    assert "build" in ok, ok
    deps_hash = box.local_deps_hash()
    assert meta(box, previous)["deps_hash"] == deps_hash
    assert_linked_deps(box, release, deps_hash)
    assert sorted(p.name for p in box.deps.iterdir()) == [deps_hash]


# --- 3. changed package.json: a new dependency install -----------------------------------


@pytest.mark.timeout(60)
def test_changed_package_json_installs_into_a_new_deps_folder(box: Box) -> None:
    assert len(box.releases) == 2, "runs after test 2"
    previous = box.releases[-1]
    old_hash = meta(box, previous)["deps_hash"]
    package = box.backend / "package.json"
    data = json.loads(package.read_text())
    data["description"] = "adapto e2e: the Node backend's production path"
    package.write_text(json.dumps(data, indent=2) + "\n")
    # Keep the lock file in step with package.json, as a developer would (offline: no deps).
    lock = run_to_files(["npm", "install", "--package-lock-only", "--offline", "--no-audit",
                          "--no-fund"], {**os.environ}, 60, cwd=box.backend)
    assert lock.returncode == 0, said(lock)
    assert json.loads((box.backend / "package-lock.json").read_text())["lockfileVersion"] == 3
    new_hash = box.local_deps_hash()
    assert new_hash != old_hash

    before = release_ids(box)
    result = box.deploy()
    assert result.returncode == 0, said(result)
    release = new_release(box, before)
    box.releases.append(release)
    box.stamps[release] = stamp_of(box, release)

    ok = steps(result)
    assert "deps" in ok and new_hash in ok["deps"][0], ok
    assert_serving(box, release)
    assert box.stamps[release] != box.stamps[previous]  # package.json is part of the build
    assert_linked_deps(box, release, new_hash)
    assert (box.deps / new_hash / "package.json").read_bytes() == package.read_bytes()
    # The previous releases keep theirs, for a rollback.
    assert_linked_deps(box, previous, old_hash)
    assert sorted(p.name for p in box.deps.iterdir()) == sorted([old_hash, new_hash])


# --- 4. rollback --------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_rollback_runs_the_previous_release_and_its_build(box: Box) -> None:
    assert len(box.releases) == 3, "runs after test 3"
    latest, previous = box.releases[-1], box.releases[-2]
    assert current(box) == latest

    back = adapto("rollback", "-e", ENV, "-i", str(box.inventory), "--yes")
    assert back.returncode == 0, said(back)
    body = assert_serving(box, previous)
    assert body["build"] == box.stamps[previous] != box.stamps[latest]
    assert body["variant"] == 2
    assert box.build_json(previous).read_text() == box.build_texts[previous]
    assert_linked_deps(box, previous, meta(box, previous)["deps_hash"])
    record = history(box)[-1]
    assert (record["action"], record["release"], record["result"], record["previous"]) == (
        "rollback", previous, "ok", latest)
    assert not (box.root / ".adapto" / "lock").exists()
