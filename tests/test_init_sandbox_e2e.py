"""A new project, as a new user meets adapto: `init`, `sandbox up`, `deploy all -e sandbox`.

The project is tests/fixtures/tiny-project (a package.json whose build writes
dist/, and a dependency-free Node backend with /api/health and a WebSocket echo,
started by `npm start`), copied into a temporary folder. Nothing in the inventory
is edited: `adapto init --sandbox-address --sandbox-dir` puts the sandbox on this
module's loopback slots (127.0.0.211; 127.0.0.212 and the derived 127.0.0.213)
and its folders under /var/tmp (PostgreSQL runs as the postgres user, who cannot
enter pytest's 0700 folders). Every sandbox is brought down with --purge whatever
happens. `.npmrc` keeps npm offline: the project has no dependencies.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e_support import REPO, Cli, adapto, said, sandbox_marks

FIXTURE = REPO / "tests" / "fixtures" / "tiny-project"
PROJECT = "tiny"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600), *sandbox_marks(("npm",))]


@dataclass(frozen=True)
class Project:
    folder: Path  # the project's sources, inventory.yaml and .adapto/
    sandbox_dir: Path  # --sandbox-dir: <it>/tiny/<host>/...

    @property
    def inventory(self) -> Path:
        return self.folder / "inventory.yaml"

    def cli(self, *args: str, timeout: float = 240) -> Cli:
        return adapto(*args, "-i", str(self.inventory), timeout=timeout)

    def host_dir(self, host: str) -> Path:
        return self.sandbox_dir / PROJECT / host


@pytest.fixture
def project(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Project]:
    address = request.param
    folder = tmp_path / "project"
    shutil.copytree(FIXTURE, folder)
    sandbox_dir = Path(tempfile.mkdtemp(prefix="adapto-h8-", dir="/var/tmp"))
    sandbox_dir.chmod(0o755)
    box = Project(folder, sandbox_dir)
    init = adapto("init", str(box.inventory), "--project", PROJECT, "--domain", "tiny.test",
                  "--sandbox-address", address, "--sandbox-dir", str(sandbox_dir))
    assert init.returncode == 0, said(init)
    try:
        yield box
    finally:
        down = box.cli("sandbox", "down", "--purge", timeout=120)
        shutil.rmtree(sandbox_dir, ignore_errors=True)
        assert down.returncode == 0, said(down)


def health_failures(result: Cli) -> tuple[list[str], set[str]]:
    """(failed checks, hosts checked) from `adapto health --json` (application/health+json)."""
    document = json.loads(result.stdout)
    entries = [e for key_entries in document["checks"].values() for e in key_entries]
    failed = [f"{e['componentId']} {e['name']}: {e['output']}" for e in entries
              if e["status"] == "fail"]
    return failed, {e["componentId"] for e in entries}


def site(address: str, path: str) -> httpx.Response:
    """The deployed site through the sandbox nginx over TLS (the name the starter gives it)."""
    return httpx.get(f"https://{address}:8443{path}", headers={"Host": "sandbox.tiny.test"},
                     verify=False, timeout=10, trust_env=False)


@pytest.mark.parametrize("project", ["127.0.0.211"], indirect=True)
def test_init_then_sandbox_up_deploy_health_down(project: Project) -> None:
    up = project.cli("sandbox", "up", timeout=120)
    assert up.returncode == 0, said(up)
    assert "PostgreSQL 127.0.0.211:5432 database tiny" in up.stdout  # DATABASE_URL's cluster

    deploy = project.cli("deploy", "all", "-e", "sandbox", "--yes", timeout=300)
    assert deploy.returncode == 0, said(deploy)
    assert (project.folder / "dist" / "index.html").is_file()  # built locally by the starter
    page = site("127.0.0.211", "/")
    assert page.status_code == 200 and "tiny site" in page.text
    assert site("127.0.0.211", "/api/health").json() == {"status": "ok"}

    health = project.cli("health", "-e", "sandbox", "--json", timeout=120)
    assert health.returncode == 0, said(health)
    assert health_failures(health) == ([], {"sandbox1"})

    down = project.cli("sandbox", "down", "--purge", timeout=120)
    assert down.returncode == 0, said(down)
    assert not project.host_dir("sandbox1").exists()
    again = project.cli("status", "-e", "sandbox")
    assert again.returncode == 1
    assert "sandbox 'sandbox' is down" in again.stderr and "adapto sandbox up" in again.stderr


@pytest.mark.parametrize("project", ["127.0.0.212"], indirect=True)
def test_hosts_2_derives_a_second_host_that_every_command_uses(project: Project) -> None:
    written = project.inventory.read_bytes()
    up = project.cli("sandbox", "up", "--hosts", "2", timeout=180)
    assert up.returncode == 0, said(up)
    assert "derived sandbox2 (127.0.0.213) from sandbox1" in up.stdout
    count_file = project.folder / ".adapto" / "sandbox" / "sandbox" / "hosts"
    assert count_file.read_text() == "2\n"
    assert project.inventory.read_bytes() == written  # the user's file is left alone

    status = project.cli("sandbox", "status")  # no --hosts: both, from the count file
    assert status.returncode == 0, said(status)
    assert "127.0.0.212:2222" in status.stdout and "127.0.0.213:2222" in status.stdout

    deploy = project.cli("deploy", "all", "-e", "sandbox", "--yes", "--json", timeout=300)
    assert deploy.returncode == 0, said(deploy)
    hosts = {json.loads(ln).get("host") for ln in deploy.stdout.splitlines() if ln[:1] == "{"}
    assert {"sandbox1", "sandbox2"} <= hosts
    for address in ("127.0.0.212", "127.0.0.213"):
        assert site(address, "/api/health").json() == {"status": "ok"}
    assert (project.host_dir("sandbox2") / "app" / "current").is_symlink()

    health = project.cli("health", "-e", "sandbox", "--json", timeout=120)
    assert health.returncode == 0, said(health)
    assert health_failures(health) == ([], {"sandbox1", "sandbox2"})

    down = project.cli("sandbox", "down", "--purge", timeout=120)
    assert down.returncode == 0, said(down)
    assert "forgot the derived hosts" in down.stdout
    assert not count_file.exists()
    assert not project.host_dir("sandbox1").exists() and not project.host_dir("sandbox2").exists()
    status = project.cli("sandbox", "status")
    assert "127.0.0.213" not in status.stdout and "127.0.0.212:2222" in status.stdout
