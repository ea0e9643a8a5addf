"""The one place that talks to hosts.

A :class:`Transport` runs shell commands on one host. :class:`SSHTransport`
opens a Fabric ``Connection`` (Paramiko underneath), runs commands through one
long-lived remote shell (:mod:`adapto_ops.remote_shell`, a few ms each instead
of a login per command) and sends bulk stdin over SFTP;
:class:`RecordingTransport` wraps another transport for ``--dry-run``: it
performs reads for real (so diffs show what is on the host) and records every
command that would change something instead of running it.

Procedures say which commands only read (``mutates=False``); everything else
is assumed to change the host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adapto_ops.errors import OperationFailed
from adapto_ops.inventory.model import Host
from adapto_ops.remote_shell import RemoteShell, ShellLost

CONNECT_TIMEOUT_S = 10
Progress = Callable[[int, int], None]  # (bytes sent, bytes in all)
# Up to this much stdin travels inline through the host's shell; more gets a channel.
INLINE_STDIN_MAX = 48 * 1024


@dataclass(frozen=True)
class Result:
    """What a command printed and how it ended."""

    command: str
    stdout: str
    stderr: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def last_error_line(self, prefer: tuple[str, ...] = ()) -> str:
        """The line that explains a failure: the first with a ``prefer`` marker, else the last."""
        for line in (self.stderr + "\n" + self.stdout).splitlines():
            if any(marker in line for marker in prefer):
                return line.strip()
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                return lines[-1]
        return f"exit code {self.exit_code}"


class CommandFailed(OperationFailed):
    """A remote command exited non-zero where success was required."""

    def __init__(self, host: str, result: Result, what: str | None = None) -> None:
        label = what or _short(result.command)
        super().__init__(f"{host}: {label} failed: {result.last_error_line()}")
        self.result = result


def _short(command: str, limit: int = 80) -> str:
    one_line = " ".join(command.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


class Transport(Protocol):
    """Commands and files on one host."""

    host: Host

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
    ) -> Result: ...

    def stream(self, command: str) -> LineStream: ...

    def close(self) -> None: ...


class LineStream:
    """The lines a command prints on an SSH channel of its own, as they are written.

    Iterate it from one thread; :meth:`close` (from any thread) closes the channel,
    which ends the iteration and, on the host, the command's stdin.
    """

    def __init__(self, channel: Any, host: str) -> None:
        self._channel = channel
        self.host = host
        self.closed_by_us = False

    def __iter__(self) -> Iterator[str]:
        pending = b""
        self._channel.settimeout(0.5)  # so a close() from another thread is noticed
        while not self.closed_by_us:
            try:
                chunk = self._channel.recv(1 << 16)
            except TimeoutError:
                continue
            except (OSError, EOFError):
                break
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                yield line.decode(errors="replace")
        if pending and not self.closed_by_us:
            yield pending.decode(errors="replace")

    def close(self) -> None:
        """End the iteration and close the channel (the remote command sees its stdin close)."""
        self.closed_by_us = True
        try:
            self._channel.close()
        except (OSError, EOFError):
            pass  # the connection is gone already


class SSHTransport:
    """A Fabric connection to ``host``; the host key must be known (no trust on first use)."""

    def __init__(
        self,
        host: Host,
        *,
        key_file: Path | None = None,
        known_hosts: Path | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_S,
    ) -> None:
        import paramiko
        from fabric import Config, Connection

        self.host = host
        self._remote_shell: RemoteShell | None = None
        self._sftp: Any = None
        client_kwargs: dict[str, Any] = {"banner_timeout": 30,
                                         "auth_timeout": 30}
        if key_file is not None:
            client_kwargs |= {"key_filename": str(key_file), "look_for_keys": False,
                              "allow_agent": False}
        config = Config(overrides={"load_ssh_configs": False, "run": {"hide": True, "warn": True}})
        self._connection = Connection(
            host.address, user=host.user, port=host.port, connect_kwargs=client_kwargs,
            config=config, connect_timeout=connect_timeout,
        )
        client = self._connection.client
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if known_hosts is not None:
            client.load_host_keys(str(known_hosts))
        else:
            client.load_system_host_keys()
        self._open()

    def _open(self) -> None:
        import paramiko

        where = f"{self.host.user}@{self.host.address}:{self.host.port} ({self.host.name})"
        try:
            self._connection.open()
        except paramiko.BadHostKeyException:
            raise OperationFailed(
                f"{where}: host key does not match known_hosts — someone may be intercepting, "
                "or the host was reinstalled; verify and update known_hosts"
            ) from None
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise OperationFailed(
                    f"{where}: host key unknown; add it to known_hosts (ssh-keyscan -p "
                    f"{self.host.port} {self.host.address}) after verifying it"
                ) from None
            raise OperationFailed(f"{where}: SSH failed: {exc}") from None
        except TimeoutError:
            raise OperationFailed(f"{where}: unreachable (connection timed out)") from None
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise OperationFailed(f"{where}: unreachable ({reason})") from None

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
        import paramiko

        del mutates  # only the recording transport cares
        try:
            shell = self._shell()
            if stdin is not None and len(stdin) > INLINE_STDIN_MAX:
                # Bulk data (a release tarball) goes over SFTP: no shell start-up, pipelined.
                path = shell.stdin_file
                shell.make_stdin_file()
                self._upload(stdin, path, progress)
                stdout, stderr, code = shell.run(command, None, timeout, stdin_path=path)
            else:
                stdout, stderr, code = shell.run(command, stdin, timeout)
        except OperationFailed as exc:
            raise OperationFailed(f"{self.host.name}: {what or _short(command)}: "
                                  f"{exc.message.removeprefix(self.host.name + ': ')}") from None
        except (OSError, EOFError, paramiko.SSHException) as exc:
            # The connection died between commands (opening a channel failed).
            self._drop_shell()
            raise OperationFailed(f"{self.host.name}: {what or _short(command)}: SSH connection "
                                  f"lost ({type(exc).__name__})") from None
        result = Result(command, stdout, stderr, code)
        if check and not result.ok:
            raise CommandFailed(self.host.name, result, what)
        return result

    def _upload(self, data: bytes, path: str, progress: Progress | None) -> None:
        import paramiko

        try:
            if self._sftp is None:
                self._sftp = self._connection.client.open_sftp()
            with self._sftp.open(path, "wb") as handle:
                handle.set_pipelined(True)
                view = memoryview(data)
                for start in range(0, len(view), 1 << 20):
                    handle.write(view[start : start + (1 << 20)])
                    if progress is not None:
                        progress(min(start + (1 << 20), len(view)), len(view))
            self._sftp.chmod(path, 0o600)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            self._drop_shell()
            raise ShellLost(f"{self.host.name}: SSH connection lost during upload "
                            f"({type(exc).__name__})") from None

    def _drop_shell(self) -> None:
        """Forget the shell and SFTP session of a dead connection; the next run reconnects."""
        self._sftp = None
        if self._remote_shell is not None:
            try:
                self._remote_shell.close()
            except (OSError, EOFError):
                pass
            self._remote_shell = None

    def _shell(self) -> RemoteShell:
        """The host's long-lived shell; a new one (and a new connection) if it was lost."""
        if self._remote_shell is None or not self._remote_shell.alive:
            transport = self._connection.client.get_transport()
            if transport is None or not transport.is_active():
                self._connection.close()
                self._open()
                transport = self._connection.client.get_transport()
            self._remote_shell = RemoteShell(transport, self.host.name)
        return self._remote_shell

    def stream(self, command: str) -> LineStream:
        """Run ``command`` on a channel of its own (not the shared shell) and stream its stdout.

        For commands that do not end by themselves (``tail -F``): the command must end
        when its stdin closes, which happens when the stream is closed.
        """
        import paramiko

        try:
            transport = self._connection.client.get_transport()
            if transport is None or not transport.is_active():
                self._drop_shell()
                self._connection.close()
                self._open()
                transport = self._connection.client.get_transport()
            channel = transport.open_session()
            channel.exec_command(command)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise OperationFailed(f"{self.host.name}: {_short(command)}: SSH connection "
                                  f"lost ({type(exc).__name__})") from None
        return LineStream(channel, self.host.name)

    def close(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except (OSError, EOFError):
                pass
        self._drop_shell()
        self._connection.close()


@dataclass
class RecordedCommand:
    host: str
    command: str
    what: str | None
    stdin_bytes: int = 0


@dataclass
class RecordingTransport:
    """--dry-run: reads go to ``inner``; changes are recorded, not made."""

    inner: Transport
    recorded: list[RecordedCommand] = field(default_factory=list)

    @property
    def host(self) -> Host:
        return self.inner.host

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
        del progress  # nothing is sent in a dry run
        if not mutates:
            return self.inner.run(command, check=check, timeout=timeout, stdin=stdin,
                                  mutates=False, what=what)
        self.recorded.append(
            RecordedCommand(self.host.name, command, what, len(stdin) if stdin else 0)
        )
        return Result(command, "", "", 0)

    def stream(self, command: str) -> LineStream:
        """Streams only read (logs), so a dry run streams for real."""
        return self.inner.stream(command)

    def close(self) -> None:
        self.inner.close()
