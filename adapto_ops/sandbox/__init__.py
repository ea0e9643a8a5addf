"""`adapto sandbox`: local rehearsal servers on loopback (sshd, nginx, PM2, PostgreSQL).

One job per module: :mod:`.hosts` (what a sandbox host is, its folders and
checks), :mod:`.procs` (run, wait, stop local programs), :mod:`.sshd`,
:mod:`.nginx`, :mod:`.pm2` and :mod:`.postgres` (one daemon each),
:mod:`.pg_cluster` (Debian's PostgreSQL binaries, shared with the tests),
:mod:`.status` (what runs) and :mod:`.lifecycle` (up and down).
"""

from adapto_ops.sandbox.lifecycle import (
    client_key_path,
    down,
    known_hosts_path,
    sandbox_hosts,
    up,
)
from adapto_ops.sandbox.procs import ToolMissing

__all__ = ["ToolMissing", "client_key_path", "down", "known_hosts_path", "sandbox_hosts", "up"]
