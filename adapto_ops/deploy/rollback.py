"""`adapto rollback`: every host back to its previous live release (or a named one)."""

from __future__ import annotations

import time
from typing import Any

from adapto_ops.deploy.run import DeployReport, HostOutcome
from adapto_ops.deploy.session import (
    Session,
    all_or_raise,
    error_message,
    lock_info,
    parallel,
    utc_now,
)
from adapto_ops.deploy.state import HealthFailed, HostState, ReleaseInfo
from adapto_ops.errors import AdaptoError
from adapto_ops.events import Reporter
from adapto_ops.selection import Selection


def rollback(selection: Selection, to: str | None, reporter: Reporter,
             *, break_lock: bool = False) -> DeployReport:
    """Back to the previous live release (or ``to``), with the same zero-downtime restart."""
    started = time.perf_counter()
    report = DeployReport(release=to)
    with Session(selection, reporter, dry_run=False) as session:
        deployers = session.deployers
        report.outcomes = [HostOutcome(d.name) for d in deployers]
        # Check the target exists everywhere before taking locks or writing history.
        for d, state in zip(deployers, all_or_raise(parallel(deployers, lambda d: d.read_state())),
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
            d.switch(target.id, reload=nginx_changed)
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
                report.outcomes[index].error = error_message(result)
        report.duration_s = time.perf_counter() - started
        for d, o, state in zip(deployers, report.outcomes, states, strict=True):
            target = state.release(o.release)
            ok = o.result == "ok" and target is not None
            d.finish(state, target if ok else ReleaseInfo(str(o.release), False, None),
                     selection.env.paths.keep_releases, {
                         "release": o.release, "user": lock_info("")["who"], "time": utc_now(),
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
