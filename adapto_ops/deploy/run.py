"""`adapto deploy` across the hosts of an environment.

Hosts work in parallel, in phases, so a failure before the switch leaves every
host on its previous release: connect -> lock -> prepare -> nginx -t ->
(activate -> gate on every host) -> prune + history -> unlock. A failed gate
on any host rolls every switched host back.
`adapto rollback` is :mod:`adapto_ops.deploy.rollback`; connections and
:func:`~adapto_ops.deploy.session.parallel` are :mod:`adapto_ops.deploy.session`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from adapto_ops.commands import release as rel
from adapto_ops.deploy.host import HostDeployer
from adapto_ops.deploy.session import (
    Session,
    error_message,
    new_release_id,
    parallel,
    utc_now,
)
from adapto_ops.deploy.state import HostState, Prepared, ReleaseInfo
from adapto_ops.errors import AdaptoError, OperationFailed
from adapto_ops.events import Event, Reporter, Step
from adapto_ops.inventory.secrets import mask
from adapto_ops.remote import RecordingTransport
from adapto_ops.render.configs import render_env
from adapto_ops.selection import Selection


@dataclass(frozen=True)
class DeployOptions:
    what: str = "all"
    dry_run: bool = False
    skip_build: bool = False
    break_lock: bool = False
    force: bool = False  # deploy even when the live release already has this content
    batch: int | None = None  # hosts switched and restarted at a time (None: all)
    rebuild: bool = False  # build the frontend even if the build cache has its inputs


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


def deploy(selection: Selection, options: DeployOptions, reporter: Reporter) -> DeployReport:
    """Build, ship, switch and check; roll back by itself if the new release is unhealthy."""
    from adapto_ops.deploy.artifacts import collect

    started = time.perf_counter()
    env = selection.env
    selection.require_sandbox_up()  # before the secrets it provides and before the build
    secret_values = selection.secrets()
    if options.dry_run and secret_values.missing:
        reporter.emit(Event("warn", "secrets", f"not set: {', '.join(secret_values.missing)}"))
    else:
        secret_values.require_all(selection.env_name)
    build = not options.skip_build and not options.dry_run
    session = Session(selection, reporter, dry_run=options.dry_run)
    session.connect_early()
    with Step(reporter, None, "build", "frontend" if build else "hash files") as s:
        try:
            artifacts, info = collect(selection.loaded, env, options.what, build=build,
                                      rebuild=options.rebuild)
        except BaseException:
            session.abandon()
            raise
        how = info.describe()
        s.done_message = ((f"{how}, " if how else "")
                          + f"{len(artifacts.manifest)} files, "
                          + f"{artifacts.total_bytes / 1e6:.1f} MB, revision {artifacts.revision}")
        s.data = {"cache": info.cache, "key": info.key, "build_s": info.seconds,
                  "source_files": info.files}
    report = DeployReport(release=None)
    # Rendered while the SSH connection may still be opening (Jinja's import included).
    try:
        env_files = {t.host.name: render_env(t, secret_values, str(selection.secrets_file))
                     for t in selection.targets}
    except BaseException:
        session.abandon()
        raise
    with session:
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
            return d.prepare(release_id, artifacts, states[i], env_files[d.name],
                             force=options.force,
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
                "user": artifacts.deployer, "time": utc_now(), "action": f"deploy {options.what}",
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
            d.switch(release_id, reload=bool(nginx_changed[i]))
            activated.append(i)
            if prep.restart_backend:
                d.rolling_restart(prep.backend_release)

        def gate(i: int) -> list[str]:
            d, prep = deployers[i], prepared[i]
            # The backend did not change, but dead instances must not stay dead.
            return d.gate() if prep.restart_backend else d.serve_gate(prep.backend_release)

        # Hosts switch and restart in batches (all at once by default); each batch must
        # pass its health gate before the next one starts.
        failures: dict[int, str] = {}
        size = options.batch or len(indexes)
        for start in range(0, len(indexes), size):
            batch = indexes[start : start + size]
            for i, r in zip(batch, parallel(batch, activate), strict=True):
                if isinstance(r, BaseException):
                    failures[i] = error_message(r)
            if not failures:
                for i, g in zip(batch, parallel(batch, gate), strict=True):
                    if isinstance(g, BaseException) or g:
                        failures[i] = error_message(g) if isinstance(g, BaseException) \
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
                "user": artifacts.deployer, "time": utc_now(),
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
        return deployers[i].serve_gate(prepared[i].backend_release)

    for i, result in enumerate(parallel(list(range(len(deployers))), serve)):
        o, d = report.outcomes[i], deployers[i]
        failures = [error_message(result)] if isinstance(result, BaseException) else result
        if failures:
            o.result, o.error = "failed", "; ".join(failures)
        persist = d.persistence(restarted=bool(d.started))
        if d.started:
            # Worth a history line: the host was not serving and adapto changed that.
            d.finish(states[i], states[i].release(o.release) or ReleaseInfo(str(o.release),
                                                                             True, None), 0, {
                "release": o.release, "user": user, "time": utc_now(),
                "action": f"deploy {options.what} (unchanged)",
                "result": "ok" if o.result == "unchanged" else o.result,
                "started": d.started, "error": o.error,
                "duration_s": round(time.perf_counter() - started, 2),
            }, live=False, restarted=True)
        elif persist and not isinstance(result, BaseException):
            d.warn_startup_failed(d.t.run(" ; ".join(persist), check=False,
                                    what="pm2 save and startup").stdout)


def _abort_on_error(results: list[Any], report: DeployReport, deployers: list[HostDeployer],
                    release_id: str) -> None:
    """Before the switch: drop the new release everywhere and stop; nothing live changed."""
    errors = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
    if not errors:
        return
    for outcome in report.outcomes:
        outcome.result = "aborted"
    for i, exc in errors:
        report.outcomes[i].error = error_message(exc)
        report.outcomes[i].result = "failed"
    for d in deployers:
        try:
            d.t.run(rel.drop_release(d.layout, release_id), check=False, what="drop release")
        except AdaptoError:
            pass  # the host is unreachable; its partial release is pruned next time
    first = errors[0][1]
    if isinstance(first, AdaptoError):
        raise first
    raise OperationFailed(f"{deployers[errors[0][0]].name}: {error_message(first)}") from first


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
        d.switch(previous.id, reload=nginx_changed)
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
                o.error = f"{o.error}; rollback failed too: {error_message(result)}"


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
