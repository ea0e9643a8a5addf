"""Connections to the hosts of an environment, and running one step on all at once.

Shared by every command that works on hosts (deploy, rollback, recover,
status, logs, ...): :func:`open_transport` for one host, :func:`parallel` for
all of them, and :class:`Session`, the connected and locked deployers a deploy
or rollback works through.
"""

from __future__ import annotations

import calendar
import getpass
import os
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from adapto_ops.deploy.host import HostDeployer
from adapto_ops.deploy.state import HostState
from adapto_ops.errors import AdaptoError
from adapto_ops.events import Reporter, Step
from adapto_ops.remote import RecordingTransport, SSHTransport, Transport
from adapto_ops.render.configs import Target, probe_token_value
from adapto_ops.selection import Selection

T = TypeVar("T")


def open_transport(selection: Selection, target: Target) -> Transport:
    """A transport to one host: local, or SSH with the environment's key and known_hosts."""
    from adapto_ops.sandbox import client_key_path, known_hosts_path

    if target.host.connection == "local":
        from adapto_ops.local import LocalTransport

        return LocalTransport(target.host)
    if selection.env.sandbox is not None:
        from adapto_ops.sandbox.status import require_up

        require_up(selection.loaded, selection.env_name, [target.host])
    return SSHTransport(
        target.host,
        key_file=client_key_path(selection.loaded, target.host),
        known_hosts=known_hosts_path(selection.env, target.host),
    )


def parallel(items: list[Any], fn: Callable[[Any], T]) -> list[T | BaseException]:
    """``fn`` on every item at once; results (or the exception raised) in order."""

    def guarded(item: Any) -> T | BaseException:
        try:
            return fn(item)
        except BaseException as exc:  # reported per host, never swallowed silently
            return exc

    if len(items) == 1:
        return [guarded(items[0])]
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(guarded, items))


def error_message(exc: BaseException) -> str:
    """The one-line message of an exception raised on a host."""
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


def all_or_raise(results: list[T | BaseException]) -> list[T]:
    """The results of :func:`parallel`, or the first exception among them raised."""
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results  # type: ignore[return-value]


def utc_now() -> str:
    """Now, as history lines and lock files write it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_release_id(states: list[HostState]) -> str:
    """UTC time to the second; bumped past any existing id so ids stay sortable and unique."""
    taken = {r.id for s in states for r in s.releases}
    now = time.time()
    ours = [t for t in taken if len(t) == 14 and t.isdigit()]
    if ours:
        # A host whose clock ran ahead once: continue after its newest id, don't loop to it.
        now = max(now, calendar.timegm(time.strptime(max(ours), "%Y%m%d%H%M%S")) + 1)
    while (candidate := time.strftime("%Y%m%d%H%M%S", time.gmtime(now))) in taken:
        now += 1
    return candidate


def lock_info(command: str) -> dict[str, Any]:
    """What a deploy lock records: who, which process, since when, doing what."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"who": f"{user}@{socket.gethostname()}", "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": command, "token": secrets.token_hex(8)}


def open_ready(selection: Selection, target: Target) -> Transport:
    """A transport whose remote shell is up: the login shell (~/.bashrc) has been paid for."""
    transport = open_transport(selection, target)
    try:
        transport.run(":", mutates=False, what="start the remote shell")
    except BaseException:
        transport.close()
        raise
    return transport


class Session:
    """Connections and deployers for the selected hosts, closed and unlocked on exit."""

    def __init__(self, selection: Selection, reporter: Reporter, *, dry_run: bool) -> None:
        self.selection, self.reporter, self.dry_run = selection, reporter, dry_run
        self.deployers: list[HostDeployer] = []
        self._early: Future[list[Transport | BaseException]] | None = None

    def connect_early(self) -> None:
        """Connect in the background while the caller builds and hashes locally.

        The SSH handshake and the remote login shell (which reads ~/.bashrc:
        0.5 s with pyenv set up there) then overlap with local work. Connecting
        changes nothing on a host; :meth:`abandon` closes it if no session follows.
        """
        targets = self.selection.targets
        pool = ThreadPoolExecutor(max_workers=1)
        self._early = pool.submit(parallel, targets, lambda t: open_ready(self.selection, t))
        pool.shutdown(wait=False)

    def abandon(self) -> None:
        """Close what :meth:`connect_early` opened (the deploy stopped before connecting)."""
        if self._early is not None:
            for result in self._early.result():
                if not isinstance(result, BaseException):
                    result.close()
            self._early = None

    def __enter__(self) -> Session:
        targets = self.selection.targets
        # Checked before connecting: a token nginx cannot quote is bad input.
        secret_values = self.selection.secrets()
        try:
            tokens = [probe_token_value(t, secret_values) for t in targets]
        except BaseException:
            self.abandon()
            raise
        with Step(self.reporter, None, "connect", f"{len(targets)} host(s) over SSH"):
            if self._early is not None:
                results, self._early = self._early.result(), None
            else:
                results = parallel(targets, lambda t: open_transport(self.selection, t))
            errors = [r for r in results if isinstance(r, BaseException)]
            transports = [r for r in results if not isinstance(r, BaseException)]
            if errors:
                for transport in transports:
                    transport.close()
                raise errors[0]
        for target, transport, token in zip(targets, transports, tokens, strict=True):
            wrapped: Transport = RecordingTransport(transport) if self.dry_run else transport
            self.deployers.append(HostDeployer(wrapped, target, self.reporter,
                                               dry_run=self.dry_run, probe_token=token))
        return self

    def lock(self, command: str, break_lock: bool) -> list[HostState]:
        """Lock every host and read its state (a dry run only reads)."""
        if self.dry_run:
            return all_or_raise(parallel(self.deployers, lambda d: d.read_state()))
        info = lock_info(command)
        return all_or_raise(parallel(self.deployers,
                             lambda d: d.lock_and_read_state({**info}, break_lock=break_lock)))

    def __exit__(self, *exc: Any) -> None:
        for deployer in self.deployers:
            try:
                deployer.release_lock()
            except Exception:
                _release_lock_fresh(self.selection, deployer)
            deployer.t.close()


def _release_lock_fresh(selection: Selection, deployer: HostDeployer) -> None:
    """After a cut connection, reconnect once so the lock does not outlive the deploy."""
    if not deployer.lock_token:
        return
    try:
        transport = open_transport(selection, deployer.target)
    except AdaptoError:
        return
    try:
        fresh = HostDeployer(transport, deployer.target, deployer.reporter)
        fresh.lock_token = deployer.lock_token
        fresh.release_lock()
    finally:
        transport.close()
