"""Which parts of each sandbox host run (`sandbox status`), and the check every command
with -e <sandbox> makes before it connects. Reads /proc, pid files and ports only."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from adapto_ops.errors import OperationFailed
from adapto_ops.inventory.loader import DEFAULT_PATH, LoadedInventory
from adapto_ops.inventory.model import Host
from adapto_ops.sandbox.hosts import SandboxHost, sandbox_host
from adapto_ops.sandbox.nginx import nginx_pid
from adapto_ops.sandbox.pm2 import pm2_pid
from adapto_ops.sandbox.procs import tcp_open
from adapto_ops.sandbox.sshd import sshd_pid


@dataclass(frozen=True)
class HostStatus:
    """Which parts of one sandbox host run (`adapto sandbox status`)."""

    sh: SandboxHost
    sshd: bool
    nginx: bool
    pm2: bool
    root: bool

    @property
    def ok(self) -> bool:
        return self.sshd and self.nginx and self.pm2 and self.root


def host_status(sh: SandboxHost) -> HostStatus:
    """Look at the pid files, /proc and the SSH port; change nothing."""
    return HostStatus(
        sh,
        sshd=bool(sshd_pid(sh)) and tcp_open(sh.host.address, sh.host.port),
        nginx=bool(nginx_pid(sh)),
        pm2=bool(pm2_pid(sh)),
        root=sh.root.is_dir(),
    )


class SandboxDown(OperationFailed):
    """A command needs a sandbox host that is not running (exit code 1)."""


def start_command(loaded: LoadedInventory, env_name: str) -> str:
    """The command that starts this sandbox, with -i when the inventory is not ./inventory.yaml."""
    default = Path(DEFAULT_PATH).resolve()
    where = "" if loaded.path == default else f" -i {shlex.quote(str(loaded.path))}"
    return f"adapto sandbox up -e {env_name}{where}"


def require_up(loaded: LoadedInventory, env_name: str, hosts: list[Host]) -> None:
    """Fail with the command that starts the sandbox when any of ``hosts`` is down.

    Down means: no running sshd of its own, or no known_hosts pinning its key (never
    brought up, or purged). Checked before connecting, so the user reads "the sandbox is
    down" rather than a missing known_hosts file or a refused connection.
    """
    down = []
    for host in hosts:
        sh = sandbox_host(loaded, env_name, host)
        if not (sh.known_hosts.is_file() and sshd_pid(sh)):
            down.append(f"{sh.name} ({sh.endpoint})")
    if down:
        raise SandboxDown(
            f"sandbox {env_name!r} is down: {', '.join(down)} not running; start it with "
            f"`{start_command(loaded, env_name)}`")
