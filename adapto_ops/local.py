"""A transport for the host adapto runs on: commands in a local `sh`, no SSH.

The monitor installed on a server (`adapto monitor install`) checks and
recovers that same server; its inventory copy marks the host
``connection: local`` so it needs no SSH key to reach itself. Same contract
as :class:`adapto_ops.remote.SSHTransport`: stdout, stderr, exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile

from adapto_ops.errors import OperationFailed
from adapto_ops.inventory.model import Host
from adapto_ops.remote import CommandFailed, Progress, Result, _short


class LocalTransport:
    """Runs each command with ``/bin/sh -c`` on this machine."""

    def __init__(self, host: Host) -> None:
        self.host = host

    def run(
        self,
        command: str,
        *,
        check: bool = True,
        timeout: float | None = None,
        stdin: bytes | None = None,
        mutates: bool = True,
        what: str | None = None,
        progress: Progress | None = None,
    ) -> Result:
        del mutates, progress
        # Output goes to files, not pipes (as on the remote shell): a daemon the
        # command starts (nginx, PM2) keeps its inherited descriptors open, and
        # reading a pipe to its end would wait for that daemon to exit. Its own
        # process group: on a timeout the whole command is killed, not just sh.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE,
                                    stdout=out, stderr=err, start_new_session=True)
            try:
                proc.communicate(stdin or b"", timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise OperationFailed(f"{self.host.name}: {what or _short(command)}: no "
                                      f"answer in {timeout:g} s") from None
            out.seek(0)
            err.seek(0)
            result = Result(command, out.read().decode("utf-8", "replace"),
                            err.read().decode("utf-8", "replace"), proc.returncode)
        if check and not result.ok:
            raise CommandFailed(self.host.name, result, what)
        return result

    def close(self) -> None:
        pass
