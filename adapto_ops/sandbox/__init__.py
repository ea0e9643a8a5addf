"""`adapto sandbox`: local rehearsal servers on loopback (sshd, nginx, PM2, PostgreSQL).

Modules, one job each: :mod:`.files` (paths, checks, config text, look-ups),
:mod:`.lifecycle` (up/down), :mod:`.postgres` (the environment's cluster) and
:mod:`.pg_cluster` (Debian's PostgreSQL binaries, shared with the tests).
"""

from adapto_ops.sandbox.files import ToolMissing
from adapto_ops.sandbox.lifecycle import (
    client_key_path,
    down,
    known_hosts_path,
    sandbox_hosts,
    up,
)

__all__ = ["ToolMissing", "client_key_path", "down", "known_hosts_path", "sandbox_hosts", "up"]
