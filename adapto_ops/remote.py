"""The one place that talks to hosts.

A :class:`Transport` runs shell commands and writes files on one host.
:class:`SSHTransport` wraps Fabric's ``Connection`` (Paramiko underneath);
:class:`RecordingTransport` wraps another transport for ``--dry-run``: it
performs reads for real (so diffs show what is on the host) and records every
command that would change something instead of running it.

Procedures say which commands only read (``mutates=False``); everything else
is assumed to change the host.
"""

from __future__ import annotations

import io
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from adapto_ops.errors import OperationFailed
from adapto_ops.inventory.model import Host

CONNECT_TIMEOUT_S = 10


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
    ) -> Result: ...

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None: ...

    def close(self) -> None: ...


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
    ) -> Result:
        del mutates  # only the recording transport cares
        if stdin is not None:
            return self._run_with_stdin(command, stdin, check=check, timeout=timeout, what=what)
        try:
            res = self._connection.run(command, timeout=timeout, in_stream=False)
        except Exception as exc:  # invoke's CommandTimedOut, paramiko/socket errors
            raise OperationFailed(f"{self.host.name}: {what or _short(command)}: {exc}") from None
        result = Result(command, res.stdout, res.stderr, res.exited)
        if check and not result.ok:
            raise CommandFailed(self.host.name, result, what)
        return result

    def _run_with_stdin(
        self, command: str, data: bytes, *, check: bool, timeout: float | None, what: str | None
    ) -> Result:
        """Stream ``data`` to the command's stdin over a raw channel (fast for big tarballs)."""
        transport = self._connection.client.get_transport()
        if transport is None or not transport.is_active():
            raise OperationFailed(f"{self.host.name}: SSH connection lost")
        channel = transport.open_session()
        try:
            if timeout:
                channel.settimeout(timeout)
            channel.exec_command(command)
            view = memoryview(data)
            for start in range(0, len(view), 1 << 18):
                channel.sendall(view[start : start + (1 << 18)])
            channel.shutdown_write()
            stdout, stderr = _drain(channel)
            exit_code = channel.recv_exit_status()
        except (OSError, EOFError) as exc:
            raise OperationFailed(
                f"{self.host.name}: {what or _short(command)}: SSH connection lost "
                f"({type(exc).__name__}{': ' + str(exc) if str(exc) else ''})"
            ) from None
        finally:
            channel.close()
        result = Result(command, stdout, stderr, exit_code)
        if check and not result.ok:
            raise CommandFailed(self.host.name, result, what)
        return result

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        """Write atomically: a temporary file in the same folder, chmod, then rename."""
        tmp = f"{remote_path}.adapto-tmp"
        script = (
            f"umask 077 && cat > {shlex.quote(tmp)} && chmod {mode:o} {shlex.quote(tmp)} "
            f"&& mv -f {shlex.quote(tmp)} {shlex.quote(remote_path)}"
        )
        self.run(script, stdin=data, what=f"write {remote_path}")

    def close(self) -> None:
        self._connection.close()


def _drain(channel: Any) -> tuple[str, str]:
    out, err = io.BytesIO(), io.BytesIO()
    while True:
        got = False
        if channel.recv_ready():
            out.write(channel.recv(1 << 16))
            got = True
        if channel.recv_stderr_ready():
            err.write(channel.recv_stderr(1 << 16))
            got = True
        if not got:
            if channel.exit_status_ready() and not channel.recv_ready() and not (
                channel.recv_stderr_ready()
            ):
                break
            time.sleep(0.005)
    return out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace")


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
    ) -> Result:
        if not mutates:
            return self.inner.run(command, check=check, timeout=timeout, stdin=stdin,
                                  mutates=False, what=what)
        self.recorded.append(
            RecordedCommand(self.host.name, command, what, len(stdin) if stdin else 0)
        )
        return Result(command, "", "", 0)

    def put_bytes(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        self.recorded.append(
            RecordedCommand(self.host.name, f"write {remote_path} (mode {mode:o})",
                            f"write {remote_path}", len(data))
        )

    def close(self) -> None:
        self.inner.close()
