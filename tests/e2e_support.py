"""What the end-to-end test modules share: the tool check, running the CLI, reading its
--json events, and the plain sandbox box (folder, inventory, up and down).

Each module brings up a sandbox of its own on its own loopback addresses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SECRET = "SUPABASE_ANON_KEY"
# The sandbox's PostgreSQL runs as the postgres user, who cannot pass through pytest's
# 0700 temporary folders: test clusters live here instead, one folder per address.
POSTGRES_ROOT = "/var/tmp/adapto-e2e-pg"


def postgres_dir(address: str, base: Path) -> str:
    """``sandbox.postgres_dir`` for a test sandbox in ``base`` whose first host is on ``address``.

    One folder per run (``base``): a second run of the same module, which fails to bind
    the same ports, must not stop or purge the first run's cluster on its way out.
    """
    import hashlib

    return f"{POSTGRES_ROOT}/{address}-{hashlib.sha256(str(base).encode()).hexdigest()[:8]}"

Cli = subprocess.CompletedProcess[str]


def tools_missing(extra: tuple[str, ...] = ()) -> list[str]:
    """The programs a sandbox needs that this machine lacks."""
    tools = ["nginx", "pm2", "node", "ssh-keygen", *extra]
    missing = [t for t in tools if not shutil.which(t, path=f"{os.environ['PATH']}:/usr/sbin")]
    return missing + ([] if os.access("/usr/sbin/sshd", os.X_OK) else ["sshd"])


def sandbox_marks(extra: tuple[str, ...] = ()) -> list[pytest.MarkDecorator]:
    """Skip (saying why) where a sandbox cannot run: not root, or tools missing."""
    missing = tools_missing(extra)
    return [
        pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox runs sshd and nginx as root"),
        pytest.mark.skipif(bool(missing), reason=f"missing: {missing}"),
    ]


def run_to_files(argv: list[str], env: dict[str, str], timeout: float,
                 cwd: Path = REPO) -> Cli:
    """Run with output in files, not pipes: a daemon started underneath must not hold them."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                              env=env, timeout=timeout, check=False)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())


def cli_env() -> dict[str, str]:
    """This process's environment without the secret or inventory a developer may export."""
    drop = {SECRET, "ADAPTO_INVENTORY", "ADAPTO_VERBOSE", "DATABASE_URL", "MIGRATION_DATABASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def adapto(*args: str, timeout: float = 240) -> Cli:
    """`python -m adapto_ops ARGS` as a user runs it; never raises on a non-zero exit."""
    return run_to_files([sys.executable, "-m", "adapto_ops", *args], cli_env(), timeout)


def said(result: Cli) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def events(result: Cli) -> list[dict[str, Any]]:
    """The --json events of a command, one object per line."""
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def pg_cluster_marks() -> list[pytest.MarkDecorator]:
    """Marks for a module that runs its own PostgreSQL cluster: e2e, and a skip saying so
    where the server binaries are missing."""
    from adapto_ops.sandbox.pg_cluster import server_bin_dir

    try:
        server_bin_dir()
        have_server = True
    except Exception:  # the binaries are missing: say so as a skip
        have_server = False
    return [pytest.mark.e2e,
            pytest.mark.skipif(not have_server, reason="no PostgreSQL server binaries")]


@dataclass
class SandboxBox:
    """A module's sandbox folder and the inventory data written there; a module's Box
    adds what its tests keep."""

    base: Path
    data: dict[str, Any]

    @property
    def inventory(self) -> Path:
        return self.base / "inventory.yaml"

    @property
    def backend(self) -> Path:
        """The local backend sources deploys ship."""
        return self.base / "backend"


@contextmanager
def sandbox_up(box: SandboxBox, env: str, *, timeout: float = 60) -> Iterator[SandboxBox]:
    """Write the box's inventory, `sandbox up` ENV; on the way out `sandbox down --purge`
    (asserted, so a sandbox left behind fails the module)."""
    import yaml

    box.inventory.write_text(yaml.safe_dump(box.data, sort_keys=False), encoding="utf-8")
    try:
        up = adapto("sandbox", "up", "-e", env, "-i", str(box.inventory), timeout=timeout)
        assert up.returncode == 0, said(up)
        yield box
    finally:
        down = adapto("sandbox", "down", "--purge", "-e", env, "-i", str(box.inventory),
                      timeout=timeout)
        assert down.returncode == 0, said(down)
