"""The sandbox host's OpenSSH server: its keys, config, start and pid.

sshd runs as the caller on the host's loopback address and port, with a host
key of its own; the deploy's client key goes to its authorized_keys and the
host key to a known_hosts file the deploy pins (no trust on first use).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from adapto_ops.errors import OperationFailed
from adapto_ops.render.engine import render_template
from adapto_ops.sandbox.hosts import SandboxHost
from adapto_ops.sandbox.procs import SSHD, live_pid, must, tcp_open, wait_for, write_file


def known_hosts_line(address: str, port: int, public_key: str) -> str:
    """A known_hosts line; OpenSSH and Paramiko write non-22 ports as [address]:port."""
    where = address if port == 22 else f"[{address}]:{port}"
    key_type, key_data = public_key.split()[:2]
    return f"{where} {key_type} {key_data}\n"


def render_sshd_config(sh: SandboxHost) -> str:
    """The host's sshd_config: its address and port, host key, authorized key, PM2_HOME."""
    return render_template(
        "sandbox/sshd_config.j2",
        {
            "project": sh.project, "env_name": sh.env_name, "host": sh.name,
            "address": sh.host.address, "port": sh.host.port, "user": sh.host.user,
            "host_key": sh.host_key, "pid_file": sh.sshd_pid,
            "authorized_keys": sh.authorized_keys, "pm2_home": sh.pm2_home,
        },
    )


def sshd_pid(sh: SandboxHost) -> int | None:
    """The pid of this host's sshd listener, if it runs."""
    return live_pid(sh.sshd_pid, f" -f {sh.sshd_config} ")


def ensure_client_key(path: Path, keygen: str) -> str:
    """Make the deploy's key pair if missing; return the public key line."""
    pub = path.with_name(path.name + ".pub")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        must("local", [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "adapto-sandbox",
                        "-f", str(path)])
    if not pub.exists():
        pub.write_text(must("local", [keygen, "-y", "-f", str(path)]))
    return pub.read_text().strip()


def up_sshd(sh: SandboxHost, keygen: str, client_pub: str) -> bool:
    """Keys, config, then start (or SIGHUP on a changed config) sshd; True if started."""
    new_key = not sh.host_key.exists()
    if new_key:
        must(sh.name, [keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"adapto-sandbox-{sh.name}",
                        "-f", str(sh.host_key)])
    host_pub = sh.host_key.with_name(sh.host_key.name + ".pub").read_text()
    write_file(sh.authorized_keys, client_pub + "\n", 0o600)
    write_file(sh.known_hosts, known_hosts_line(sh.host.address, sh.host.port, host_pub))
    changed = write_file(sh.sshd_config, render_sshd_config(sh), 0o600) or new_key
    pid = sshd_pid(sh)
    if pid and not changed:
        return False
    Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)  # privilege separation
    must(sh.name, [SSHD, "-t", "-f", str(sh.sshd_config)])  # a bad config must not stop it
    if pid:
        os.kill(pid, signal.SIGHUP)  # sshd re-executes itself with the new config
        return False
    must(sh.name, [SSHD, "-f", str(sh.sshd_config), "-E", str(sh.sshd_log)])
    # sshd daemonizes before it binds, so success shows only as an open port.
    if not wait_for(lambda: sshd_pid(sh) and tcp_open(sh.host.address, sh.host.port, 0.2), 10):
        raise OperationFailed(f"{sh.name}: sshd did not start listening on {sh.endpoint}; "
                              f"see {sh.sshd_log}")
    return True
