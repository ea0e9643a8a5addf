"""A deployed one-host sandbox for the operate tests (status, health, logs, recover, monitor).

Each test module passes its own loopback address and ports (a :class:`Slot`),
so modules never meet each other, a developer's sandbox (127.0.0.2) or the
deploy tests' (127.0.0.31-33). ``deployed_sandbox`` brings sshd, nginx and PM2
up under a pytest temporary folder, deploys reference/backend and a tiny
frontend with ``--skip-build``, and brings everything down with ``--purge``
at the end, whatever happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e_support import REPO, SECRET, Cli, adapto, postgres_dir, run_to_files, said

ENV = "op"
HOST = "sandbox1"
SERVER_NAME = "op.adapto.test"


@dataclass(frozen=True)
class Slot:
    """Where one test module's sandbox lives on loopback."""

    address: str
    ssh_port: int
    http_port: int
    https_port: int
    ports: tuple[int, int]


@dataclass
class OpBox:
    base: Path
    slot: Slot
    data: dict[str, Any]
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def inventory(self) -> Path:
        return self.base / "inventory.yaml"

    @property
    def sdir(self) -> Path:
        return self.base / HOST

    @property
    def root(self) -> Path:
        return self.sdir / "app"

    @property
    def pm2_home(self) -> Path:
        return self.sdir / "pm2"

    @property
    def site_config(self) -> Path:
        return self.sdir / "nginx" / "conf" / "sites-available" / "sandbox.conf"

    @property
    def nginx_pid_file(self) -> Path:
        return self.sdir / "nginx" / "logs" / "nginx.pid"

    @property
    def log_dir(self) -> Path:
        return self.root / "shared" / "logs"

    def cli(self, *args: str, timeout: float = 240) -> Cli:
        """`adapto ARGS -e op -i <inventory>`."""
        return adapto(*args, "-e", ENV, "-i", str(self.inventory), timeout=timeout)

    def deploy(self, *extra: str) -> Cli:
        return self.cli("deploy", "all", "--yes", "--skip-build", *extra)

    def write_variant(self, name: str, change: Callable[[dict[str, Any]], None]) -> Path:
        """A copy of the inventory with the environment changed by ``change``."""
        import copy

        data = copy.deepcopy(self.data)
        change(data["environments"][ENV])
        path = self.base / f"inventory-{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    def url(self, path: str = "/api/health") -> str:
        return f"https://{self.slot.address}:{self.slot.https_port}{path}"

    def get(self, path: str = "/api/health", timeout: float = 10) -> httpx.Response:
        return httpx.get(self.url(path), headers={"Host": SERVER_NAME}, verify=False,
                         timeout=timeout, trust_env=False)

    def pm2(self, *args: str) -> Cli:
        return run_to_files(["pm2", *args], {**os.environ, "PM2_HOME": str(self.pm2_home)}, 60)

    def pm2_apps(self) -> dict[str, dict[str, Any]]:
        """name -> pid, status, restarts (the daemon must be running)."""
        result = self.pm2("jlist")
        line = next(ln for ln in result.stdout.splitlines() if ln.startswith("["))
        return {a["name"]: {"pid": a["pid"], "status": a["pm2_env"]["status"],
                            "restarts": a["pm2_env"].get("restart_time", 0)}
                for a in json.loads(line)}

    def pm2_daemon_pid(self) -> int | None:
        try:
            pid = int((self.pm2_home / "pm2.pid").read_text().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None

    def nginx_pid(self) -> int | None:
        try:
            pid = int(self.nginx_pid_file.read_text().split()[0])
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError, IndexError):
            return None


def inventory_data(base: Path, slot: Slot) -> dict[str, Any]:
    """The repository's sandbox environment, moved under ``base`` and onto ``slot``."""
    data = yaml.safe_load((REPO / "inventory.yaml").read_text(encoding="utf-8"))
    text = yaml.safe_dump(data["environments"]["sandbox"])
    env = yaml.safe_load(text.replace("/var/tmp/adapto-sandbox", str(base)))
    env["description"] = "tests: an operate sandbox"
    env["hosts"] = [{**env["hosts"][0], "name": HOST, "address": slot.address,
                     "port": slot.ssh_port, "key_file": str(base / ".adapto" / "id_ed25519")}]
    env["frontend"] = {"source": str(base / "frontend"), "build": None, "dist": "dist"}
    env["backend"].update(source=str(base / "backend"), base_port=slot.ports[0],
                          instances=len(slot.ports))
    env["nginx"].update(server_names=[SERVER_NAME], http_port=slot.http_port,
                        https_port=slot.https_port)
    env["firewall"] = {"manage": False,
                       "allow": [f"{p}/tcp" for p in (slot.ssh_port, slot.http_port,
                                                      slot.https_port)],
                       "deny": [f"{p}/tcp" for p in slot.ports]}
    env["health"] = {**(env.get("health") or {}), "instance_start_timeout_s": 20.0}
    secret_names = [n for n in env["secrets"]["names"] if n != SECRET] + [SECRET]
    env["secrets"] = {"names": secret_names, "file": str(base / ".adapto" / "secrets.env")}
    env["sandbox"]["postgres_dir"] = postgres_dir(slot.address, base)
    data["environments"] = {ENV: env}
    return data


def write_sources(base: Path) -> None:
    shutil.copytree(REPO / "reference" / "backend", base / "backend",
                    ignore=shutil.ignore_patterns(".venv", "__pycache__", "RELEASE",
                                                  "FAIL_HEALTH", "CRASH_ON_START"))
    assets = base / "frontend" / "dist" / "assets"
    assets.mkdir(parents=True)
    (assets / "index-op0001.js").write_text("document.title = 'adapto operate';\n")
    (base / "frontend" / "dist" / "index.html").write_text(
        "<!doctype html><html><head><title>adapto operate</title>"
        '<script type="module" src="/assets/index-op0001.js"></script></head>'
        '<body><div id="root"></div></body></html>\n')


@contextlib.contextmanager
def deployed_sandbox(base: Path, slot: Slot, *, deploy: bool = True,
                     adjust: Callable[[dict[str, Any]], None] | None = None) -> Iterator[OpBox]:
    """A sandbox on ``slot`` with the reference app deployed; purged on exit.

    ``adjust`` changes the environment's inventory data before anything is deployed.
    """
    write_sources(base)
    box = OpBox(base, slot, inventory_data(base, slot))
    if adjust is not None:
        adjust(box.data["environments"][ENV])
    box.inventory.write_text(yaml.safe_dump(box.data, sort_keys=False), encoding="utf-8")
    try:
        up = box.cli("sandbox", "up", timeout=120)
        assert up.returncode == 0, said(up)
        if deploy:
            first = box.deploy()
            assert first.returncode == 0, said(first)
        yield box
    finally:
        for cleanup in reversed(box.cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        down = box.cli("sandbox", "down", "--purge", timeout=120)
        assert down.returncode == 0, said(down)
