"""`adapto sandbox status`: which parts of each host run (reads /proc and ports only)."""

from __future__ import annotations

from dataclasses import dataclass

from adapto_ops.sandbox.hosts import SandboxHost
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
