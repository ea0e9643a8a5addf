"""`adapto deploy` and `adapto rollback` across the hosts of an environment.

Hosts work in parallel, in phases, so a failure before the switch leaves every
host on its previous release: connect -> lock -> prepare -> nginx -t ->
(activate -> gate on every host) -> prune + history -> unlock. A failed gate
on any host rolls every switched host back.
"""

from __future__ import annotations

import calendar
import getpass
import os
import secrets
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from adapto_ops.commands import release as rel
from adapto_ops.deploy.host import (
    HealthFailed,
    HostDeployer,
    HostState,
    Prepared,
    ReleaseInfo,
)
from adapto_ops.errors import AdaptoError, OperationFailed
from adapto_ops.events import Event, Reporter, Step
from adapto_ops.inventory.secrets import mask
from adapto_ops.remote import RecordingTransport, SSHTransport, Transport
from adapto_ops.render.configs import Target, probe_token_value, render_env
from adapto_ops.selection import Selection

T = TypeVar("T")


@dataclass(frozen=True)
class DeployOptions:
    what: str = "all"
    dry_run: bool = False
    skip_build: bool = False
    break_lock: bool = False
    force: bool = False  # deploy even when the live release already has this content
    batch: int | None = None  # hosts switched and restarted at a time (None: all)


@dataclass
class HostOutcome:
    host: str
    release: str | None = None
    result: str = "pending"  # ok | rolled-back | failed | aborted | dry-run
    error: str | None = None
    bytes_sent: int = 0
    files_sent: int = 0
    previous: str | None = None


@dataclass
class DeployReport:
    release: str | None
    outcomes: list[HostOutcome] = field(default_factory=list)
    duration_s: float = 0.0
    recorded: list[Any] = field(default_factory=list)  # dry run: commands not run
    diffs: list[tuple[str, str, str]] = field(default_factory=list)  # host, path, unified diff

    @property
    def ok(self) -> bool:
        return all(o.result in {"ok", "dry-run", "unchanged"} for o in self.outcomes)


def open_transport(selection: Selection, target: Target) -> Transport:
    from adapto_ops.sandbox import client_key_path, known_hosts_path

    if target.host.connection == "local":
        from adapto_ops.local import LocalTransport

        return LocalTransport(target.host)
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


def _message(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


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
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return {"who": f"{user}@{socket.gethostname()}", "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": command, "token": secrets.token_hex(8)}


class Session:
    """Connections and deployers for the selected hosts, closed and unlocked on exit."""

    def __init__(self, selection: Selection, reporter: Reporter, *, dry_run: bool) -> None:
        self.selection, self.reporter, self.dry_run = selection, reporter, dry_run
        self.deployers: list[HostDeployer] = []

    def __enter__(self) -> Session:
        targets = self.selection.targets
        # Checked before connecting: a token nginx cannot quote is bad input.
        secret_values = self.selection.secrets()
        tokens = [probe_token_value(t, secret_values) for t in targets]
        with Step(self.reporter, None, "connect", f"{len(targets)} host(s) over SSH"):
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
            return _all(parallel(self.deployers, lambda d: d.read_state()))
        info = lock_info(command)
        return _all(parallel(self.deployers,
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


def deploy(selection: Selection, options: DeployOptions, reporter: Reporter) -> DeployReport:
    """Build, ship, switch and check; roll back by itself if the new release is unhealthy."""
    from adapto_ops.deploy.artifacts import collect

    started = time.perf_counter()
    env = selection.env
    secret_values = selection.secrets()
    if options.dry_run and secret_values.missing:
        reporter.emit(Event("warn", "secrets", f"not set: {', '.join(secret_values.missing)}"))
    else:
        secret_values.require_all(selection.env_name)
    build = not options.skip_build and not options.dry_run
    with Step(reporter, None, "build", "frontend" if build else "hash files") as s:
        artifacts, build_s = collect(selection.loaded, env, options.what, build=build)
        s.done_message = (f"{len(artifacts.manifest)} files, {artifacts.total_bytes / 1e6:.1f} MB"
                          + (f", built in {build_s:.1f}s" if build_s else "")
                          + f", revision {artifacts.revision}")
    report = DeployReport(release=None)
    with Session(selection, reporter, dry_run=options.dry_run) as session:
        deployers = session.deployers
        indexes = list(range(len(deployers)))
        report.outcomes = [HostOutcome(d.name) for d in deployers]
        states = session.lock(f"deploy {options.what}", options.break_lock)
        release_id = new_release_id(states)
        report.release = release_id
        for outcome, state in zip(report.outcomes, states, strict=True):
            outcome.release, outcome.previous = release_id, state.current

        def prepare(i: int, skip_unchanged: bool) -> Prepared:
            d = deployers[i]
            env_file = render_env(d.target, secret_values, str(selection.secrets_file))
            return d.prepare(release_id, artifacts, states[i], env_file, force=options.force,
                             skip_unchanged=skip_unchanged)

        skip = not (options.force or options.dry_run)
        prepared_or_errors = parallel(indexes, lambda i: prepare(i, skip))
        _abort_on_error(prepared_or_errors, report, deployers, release_id)
        prepared: list[Prepared] = prepared_or_errors  # type: ignore[assignment]
        if all(p.unchanged_from for p in prepared):
            for o, p in zip(report.outcomes, prepared, strict=True):
                o.result, o.release = "unchanged", p.unchanged_from
            reporter.emit(Event("info", "unchanged", "every host already runs this content; "
                                "nothing to ship (--force deploys anyway); checking it serves"))
            _serve_unchanged(deployers, states, prepared, report, options, artifacts.deployer,
                             started)
            report.duration_s = time.perf_counter() - started
            return report
        if any(p.unchanged_from for p in prepared):
            # Some hosts differ: deploy everywhere so that all hosts run one release id.
            retry = parallel(indexes, lambda i: prepare(i, False))
            _abort_on_error(retry, report, deployers, release_id)
            prepared = retry  # type: ignore[assignment]
        for outcome, prep in zip(report.outcomes, prepared, strict=True):
            outcome.bytes_sent, outcome.files_sent = prep.bytes_sent, len(prep.plan.send)
        if env.backend.migrate and "backend" in artifacts.components:
            # Before nginx or `current` change: a failure leaves every host as it was.
            from adapto_ops.deploy.migrate import migrate_step

            _abort_on_error(migrate_step(deployers, release_id, {
                "release": release_id, "revision": artifacts.revision,
                "user": artifacts.deployer, "time": _now(), "action": f"deploy {options.what}",
                "previous": states[0].current}, dry_run=options.dry_run),
                report, deployers, release_id)
        if env.firewall.apply_on_deploy and env.firewall.manage:
            # Before the switch, like migrations: a refused or failed plan leaves all as it was.
            from adapto_ops.procedures.firewall import deploy_step

            _abort_on_error(parallel(indexes, lambda i: deploy_step(
                deployers[i].t, deployers[i].target, reporter, dry_run=options.dry_run)),
                report, deployers, release_id)
        if options.dry_run:
            _dry_run_report(report, deployers, prepared)
            report.duration_s = time.perf_counter() - started
            return report
        nginx_changed = parallel(indexes, lambda i: deployers[i].install_nginx(release_id))
        _abort_on_error(nginx_changed, report, deployers, release_id)

        activated: list[int] = []

        def activate(i: int) -> None:
            d, prep = deployers[i], prepared[i]
            d.switch(release_id, reload=bool(nginx_changed[i]) or prep.dist_changed)
            activated.append(i)
            if prep.restart_backend:
                d.rolling_restart(prep.backend_release)
            else:  # the backend did not change, but dead instances must not stay dead
                d.start_missing(prep.backend_release)

        # Hosts switch and restart in batches (all at once by default); each batch must
        # pass its health gate before the next one starts.
        failures: dict[int, str] = {}
        size = options.batch or len(indexes)
        for start in range(0, len(indexes), size):
            batch = indexes[start : start + size]
            for i, r in zip(batch, parallel(batch, activate), strict=True):
                if isinstance(r, BaseException):
                    failures[i] = _message(r)
            if not failures:
                for i, g in zip(batch, parallel(batch, lambda i: deployers[i].gate()),
                                strict=True):
                    if isinstance(g, BaseException) or g:
                        failures[i] = _message(g) if isinstance(g, BaseException) \
                            else "; ".join(g)
            if failures:
                break
        if failures:
            for i, why in failures.items():
                report.outcomes[i].error = why
            _rollback_after_failure(deployers, prepared, activated, report, reporter)
        else:
            for o in report.outcomes:
                o.result = "ok"
        report.duration_s = time.perf_counter() - started

        def finish(i: int) -> None:
            o = report.outcomes[i]
            deployers[i].finish(states[i], prepared[i].as_release(), env.paths.keep_releases, {
                "release": release_id, "revision": artifacts.revision,
                "user": artifacts.deployer, "time": _now(),
                "action": f"deploy {options.what}", "result": o.result,
                "duration_s": round(report.duration_s, 2), "previous": o.previous,
                "bytes_sent": o.bytes_sent, "error": o.error,
            }, live=o.result == "ok", restarted=prepared[i].restart_backend or bool(
                deployers[i].started))

        parallel(indexes, finish)
    return report


def _serve_unchanged(deployers: list[HostDeployer], states: list[HostState],
                     prepared: list[Prepared], report: DeployReport, options: DeployOptions,
                     user: str, started: float) -> None:
    """Nothing to ship, yet the release must serve: start dead instances, then gate.

    After a reboot that PM2 did not survive, the live release is exactly this
    content while no instance runs; "unchanged" must not mean "healthy". A host
    that fails the gate is reported failed (exit 1); there is nothing to roll back.
    """

    def serve(i: int) -> list[str]:
        d, prep = deployers[i], prepared[i]
        d.start_missing(prep.backend_release)
        return d.gate()

    for i, result in enumerate(parallel(list(range(len(deployers))), serve)):
        o, d = report.outcomes[i], deployers[i]
        failures = [_message(result)] if isinstance(result, BaseException) else result
        if failures:
            o.result, o.error = "failed", "; ".join(failures)
        persist = d.persistence(restarted=bool(d.started))
        if d.started:
            # Worth a history line: the host was not serving and adapto changed that.
            d.finish(states[i], states[i].release(o.release) or ReleaseInfo(str(o.release),
                                                                             True, None), 0, {
                "release": o.release, "user": user, "time": _now(),
                "action": f"deploy {options.what} (unchanged)",
                "result": "ok" if o.result == "unchanged" else o.result,
                "started": d.started, "error": o.error,
                "duration_s": round(time.perf_counter() - started, 2),
            }, live=False, restarted=True)
        elif persist and not isinstance(result, BaseException):
            d.warn_startup_failed(d.t.run(" ; ".join(persist), check=False,
                                    what="pm2 save and startup").stdout)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _all(results: list[T | BaseException]) -> list[T]:
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results  # type: ignore[return-value]


def _abort_on_error(results: list[Any], report: DeployReport, deployers: list[HostDeployer],
                    release_id: str) -> None:
    """Before the switch: drop the new release everywhere and stop; nothing live changed."""
    errors = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
    if not errors:
        return
    for outcome in report.outcomes:
        outcome.result = "aborted"
    for i, exc in errors:
        report.outcomes[i].error = _message(exc)
        report.outcomes[i].result = "failed"
    for d in deployers:
        try:
            d.t.run(rel.drop_release(d.layout, release_id), check=False, what="drop release")
        except AdaptoError:
            pass  # the host is unreachable; its partial release is pruned next time
    first = errors[0][1]
    if isinstance(first, AdaptoError):
        raise first
    raise OperationFailed(f"{deployers[errors[0][0]].name}: {_message(first)}") from first


def _rollback_after_failure(deployers: list[HostDeployer], prepared: list[Prepared],
                            activated: list[int], report: DeployReport,
                            reporter: Reporter) -> None:
    for outcome in report.outcomes:
        outcome.result = "failed"

    def back(index: int) -> None:
        d, prep = deployers[index], prepared[index]
        previous = prep.previous
        if previous is None:
            reporter.emit(Event("warn", "rollback", "no previous release to return to", d.name))
            return
        nginx_changed = d.install_nginx(previous.id)
        # The new .env may be why the gate failed (a wrong secret): the old one goes back.
        d.restore_env()
        d.switch(previous.id, reload=nginx_changed or prep.dist_changed)
        if prep.restart_backend and d.replaced:
            # Only the instances the failed release reached; the others never left it.
            d.rolling_restart(previous.backend_release, names=list(d.replaced))
        report.outcomes[index].result = "rolled-back"

    order = sorted(activated)
    with Step(reporter, None, "rollback", f"{len(order)} host(s) to their previous release"):
        for index, result in zip(order, parallel(order, back), strict=True):
            if isinstance(result, BaseException):
                o = report.outcomes[index]
                o.result = "failed"
                o.error = f"{o.error}; rollback failed too: {_message(result)}"


def _dry_run_report(report: DeployReport, deployers: list[HostDeployer],
                    prepared: list[Prepared]) -> None:
    """What would run, and how each config would change, without changing anything."""
    import difflib

    for i, (d, prep) in enumerate(zip(deployers, prepared, strict=True)):
        report.outcomes[i].result = "dry-run"
        # Recorded, not run: a dry run's transport only reads.
        d.install_nginx(prep.release_id)
        d.switch(prep.release_id)
        if prep.restart_backend:
            d.rolling_restart(prep.backend_release)
        ecosystem_now = f"{d.layout.current}/ecosystem.config.js"
        ecosystem_new = next((t for p, t in prep.files.items() if p.endswith(".config.js")), "")
        for path, new_text in ((d.env.nginx.site_config_path, prep.nginx_file.text),
                               (ecosystem_now, ecosystem_new)):
            old = d.t.run(f"cat {path} 2>/dev/null || true", mutates=False, check=False).stdout
            if old != new_text:
                if d.probe_token:  # a secret: the diff shows where it is, never what
                    old, new_text = (text.replace(d.probe_token, mask(d.probe_token))
                                     for text in (old, new_text))
                diff = "".join(difflib.unified_diff(
                    old.splitlines(keepends=True), new_text.splitlines(keepends=True),
                    fromfile=f"{d.name}:{path} (now)", tofile=f"{d.name}:{path} (new)"))
                report.diffs.append((d.name, path, diff))
        env_diff = _env_diff(d, prep)
        if env_diff:
            report.diffs.append((d.name, d.layout.env_file, env_diff))
        if isinstance(d.t, RecordingTransport):
            report.recorded.extend(d.t.recorded)


def _env_diff(d: HostDeployer, prep: Prepared) -> str:
    """Which variables of the env file would change: names only, values never shown."""
    from adapto_ops.inventory.secrets import parse_dotenv

    path = d.layout.env_file
    old = parse_dotenv(d.t.run(f"cat {path} 2>/dev/null || true", mutates=False,
                               check=False).stdout)
    new = parse_dotenv(prep.env_text)
    lines = [f"+ {k} (new)" for k in new if k not in old]
    lines += [f"- {k} (removed)" for k in old if k not in new]
    lines += [f"~ {k} (value changed)" for k in new if k in old and old[k] != new[k]]
    if not lines:
        return ""
    return f"--- {d.name}:{path} (values masked)\n" + "\n".join(lines) + "\n"


def rollback(selection: Selection, to: str | None, reporter: Reporter,
             *, break_lock: bool = False) -> DeployReport:
    """Back to the previous live release (or ``to``), with the same zero-downtime restart."""
    started = time.perf_counter()
    report = DeployReport(release=to)
    with Session(selection, reporter, dry_run=False) as session:
        deployers = session.deployers
        report.outcomes = [HostOutcome(d.name) for d in deployers]
        # Check the target exists everywhere before taking locks or writing history.
        for d, state in zip(deployers, _all(parallel(deployers, lambda d: d.read_state())),
                            strict=True):
            _rollback_target(d.name, state, to)
        states = session.lock("rollback", break_lock)

        def back(index: int) -> None:
            d, state, o = deployers[index], states[index], report.outcomes[index]
            o.previous = state.current
            target = _rollback_target(d.name, state, to)
            o.release = target.id
            current = state.release(state.current)
            nginx_changed = d.install_nginx(target.id)
            same_dist = (current is not None and (current.meta or {}).get("dist_hash")
                         and (current.meta or {}).get("dist_hash")
                         == (target.meta or {}).get("dist_hash"))
            d.switch(target.id, reload=nginx_changed or not same_dist)
            if current is None or current.backend_release != target.backend_release:
                d.rolling_restart(target.backend_release)
                restarted[index] = True
            failures = d.gate()
            if failures:
                raise HealthFailed(f"{d.name}: after rollback: " + "; ".join(failures))
            o.result = "ok"

        restarted = [False] * len(deployers)
        results = parallel(list(range(len(deployers))), back)
        report.release = report.release or report.outcomes[0].release
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                report.outcomes[index].result = "failed"
                report.outcomes[index].error = _message(result)
        report.duration_s = time.perf_counter() - started
        for d, o, state in zip(deployers, report.outcomes, states, strict=True):
            target = state.release(o.release)
            ok = o.result == "ok" and target is not None
            d.finish(state, target if ok else ReleaseInfo(str(o.release), False, None),
                     selection.env.paths.keep_releases, {
                         "release": o.release, "user": lock_info("")["who"], "time": _now(),
                         "action": "rollback", "result": o.result, "previous": o.previous,
                         "duration_s": round(report.duration_s, 2), "error": o.error,
                     }, live=ok, restarted=restarted[deployers.index(d)])
    return report


def _rollback_target(host: str, state: HostState, to: str | None) -> ReleaseInfo:
    """The release to return to, or a one-line error naming the ones there are."""
    target = state.release(to) if to else _previous_live(state)
    if target is not None and target.complete:
        return target
    known = ", ".join(r.id for r in state.releases if r.complete) or "none"
    if to:
        raise AdaptoError(f"{host}: no release {to!r} to roll back to (releases: {known})")
    raise AdaptoError(f"{host}: no earlier live release to roll back to (releases: {known})")


def _previous_live(state: HostState) -> Any:
    live = [r for r in state.releases if r.complete and r.live and r.id != state.current
            and (state.current is None or r.id < state.current)]
    return live[-1] if live else None
