"""One long-lived /bin/sh per host, so a command costs a few ms instead of a login.

Every SSH exec starts the user's login shell, which reads ~/.bashrc: on a
machine with pyenv or nvm set up there, that is 100-150 ms before the
command runs, and a deploy runs a dozen commands. Like Ansible's pipelining,
adapto starts one `sh` per host and feeds it commands:

    ( COMMAND
    ) <STDIN >OUT 2>ERR; rc=$?; cat OUT; printf MARK-SPLIT; cat ERR; printf MARK-END rc

OUT and ERR are files so the two streams stay apart; MARK is random per
session, so no command output can fake it. Small stdin data travels inline
(base64); large uploads use a channel of their own (see remote.SSHTransport).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from typing import Any

from adapto_ops.errors import OperationFailed


class ShellLost(OperationFailed):
    """The shell or its connection went away mid-command."""


class RemoteShell:
    """A `sh` reading commands on one SSH channel."""

    def __init__(self, transport: Any, host: str) -> None:
        self.host = host
        self.marker = f"__ADAPTO_{secrets.token_hex(8)}__"
        self.tmp = f"/tmp/.adapto-{secrets.token_hex(6)}"
        self._end = re.compile(rf"\n{self.marker}END (\d+)\n".encode())
        # The longest text the end marker can span: where a search must resume.
        self._end_max = len(f"\n{self.marker}END 999\n")
        self._channel = transport.open_session()
        # Everything after this line reaches sh, not the login shell.
        self._channel.exec_command("exec /bin/sh")
        # The files this shell makes in /tmp (each command's output, bulk stdin) are
        # created 0600: output can hold a secret (a dry run reads the .env to diff it).
        # Each command gets the login umask back, so what it creates is as before.
        self._channel.sendall(b"__adapto_umask=$(umask); umask 077\n")
        self._buffer = b""
        self._ran = False

    @property
    def alive(self) -> bool:
        return not (self._channel.closed or self._channel.exit_status_ready())

    def make_stdin_file(self, timeout: float | None = 30) -> None:
        """Create the bulk-stdin file empty and 0600 before SFTP writes into it.

        sftp-server would create it with its own umask (0644 as a rule), readable by
        every user of the host while a release tarball (the .env inside) arrives.
        """
        if not self._ran:  # every command leaves it behind, made in this 077 shell
            self.run(":", None, timeout)

    @property
    def stdin_file(self) -> str:
        """Where bulk stdin is uploaded (by SFTP) before the command that reads it."""
        return f"{self.tmp}.in"

    def run(self, command: str, stdin: bytes | None, timeout: float | None,
            stdin_path: str | None = None) -> tuple[str, str, int]:
        out, err = f"{self.tmp}.out", f"{self.tmp}.err"
        if stdin_path is not None:
            head, source = "", f"< {stdin_path}"
        elif stdin is None:
            head, source = "", "< /dev/null"
        else:
            encoded = base64.b64encode(stdin).decode()
            head, source = f"printf '%s' '{encoded}' | base64 -d | ", ""
        script = (
            f"{head}(umask \"$__adapto_umask\"\n{command}\n) {source} > {out} 2> {err}; "
            f"__rc=$?; cat {out}; "
            f"printf '\\n{self.marker}SPLIT\\n'; cat {err}; "
            f"rm -f {out} {err}; : > {self.stdin_file}; "
            f"printf '\\n{self.marker}END %d\\n' $__rc\n"
        )
        try:
            self._channel.sendall(script.encode())
            data, code = self._read_until_end(timeout)
            self._ran = True
        except (OSError, EOFError) as exc:
            self.close()
            raise ShellLost(f"{self.host}: SSH connection lost ({type(exc).__name__})") from None
        split = f"\n{self.marker}SPLIT\n".encode()
        stdout, _, stderr = data.partition(split)
        return stdout.decode(errors="replace"), stderr.decode(errors="replace"), code

    def _read_until_end(self, timeout: float | None) -> tuple[bytes, int]:
        deadline = None if timeout is None else time.monotonic() + timeout
        # The leading newline lets the marker match even when the output is empty.
        # A bytearray grows in place and each search starts just before the new
        # chunk (a marker may straddle two chunks): a large output (a log window)
        # stays linear instead of copying and rescanning everything per chunk.
        pending = bytearray(b"\n" + self._buffer)
        start = 0
        while True:
            match = self._end.search(pending, start)
            if match:
                self._buffer = bytes(pending[match.end():])
                return bytes(pending[1:match.start()]), int(match.group(1))
            start = max(0, len(pending) - self._end_max)
            if deadline is not None and time.monotonic() > deadline:
                self.close()
                raise OperationFailed(f"{self.host}: command timed out after {timeout:.0f}s")
            self._channel.settimeout(0.5)
            try:
                chunk = self._channel.recv(1 << 16)
            except TimeoutError:
                continue
            if not chunk:
                self.close()
                raise ShellLost(f"{self.host}: SSH connection lost (the remote shell ended)")
            pending += chunk

    def close(self) -> None:
        try:
            if not self._channel.closed:
                self._channel.sendall(f"rm -f {self.tmp}.*; exit\n".encode())
        except (OSError, EOFError):
            pass  # the connection is gone; so is the shell
        self._channel.close()
