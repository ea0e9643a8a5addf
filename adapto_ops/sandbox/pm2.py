"""The sandbox host's PM2 daemon: its own PM2_HOME and the environment a session has."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from adapto_ops.errors import OperationFailed
from adapto_ops.sandbox.hosts import SandboxHost
from adapto_ops.sandbox.procs import SESSION_PATH, live_pid, must, wait_for


def pm2_pid(sh: SandboxHost) -> int | None:
    """The pid of this host's PM2 daemon, if it runs."""
    return live_pid(sh.pm2_pid, f"PM2_HOME={sh.pm2_home}\n")


def pm2_env(sh: SandboxHost, node: str) -> dict[str, str]:
    """The environment of the PM2 daemon: what an SSH session on the host would have."""
    return {
        "PATH": f"{Path(node).parent}:{SESSION_PATH}",
        "HOME": pwd.getpwuid(os.getuid()).pw_dir,
        "LANG": "C.UTF-8",
        "PM2_HOME": str(sh.pm2_home),
    }


def up_pm2(sh: SandboxHost, pm2: str, node: str) -> bool:
    """Start the PM2 daemon as a server's boot does, saved processes included.

    On a production host PM2's systemd unit (`pm2 startup`) runs `pm2 resurrect`
    at boot; `up` after `down` is the sandbox's reboot, so it does the same with
    the list the last deploy saved (dump.pm2), when there is one.
    """
    if pm2_pid(sh):
        return False
    env = pm2_env(sh, node)
    must(sh.name, [pm2, "ping"], env)  # starts the daemon, answers once it runs
    if not wait_for(lambda: pm2_pid(sh), 10):
        raise OperationFailed(f"{sh.name}: the PM2 daemon did not start; see {sh.pm2_home}/pm2.log")
    if (sh.pm2_home / "dump.pm2").is_file():
        must(sh.name, [pm2, "resurrect"], env)
    return True
