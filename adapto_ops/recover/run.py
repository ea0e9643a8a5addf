"""Run a recovery on every selected host at once and collect what each ended with."""

from __future__ import annotations

import time

from adapto_ops.deploy.host import HostDeployer
from adapto_ops.errors import AdaptoError
from adapto_ops.events import Reporter
from adapto_ops.recover.report import WHATS, HostRecovery, RecoverReport
from adapto_ops.selection import Selection


def check_what(what: str) -> str:
    """``what`` if adapto knows how to recover it; else a one-line error (exit 2)."""
    if what not in WHATS:
        raise AdaptoError(f"recover: unknown target {what!r}; choose one of: {', '.join(WHATS)}")
    return what


def recover(selection: Selection, what: str, reporter: Reporter, *,
            dry_run: bool = False, fix: bool = True,
            break_lock: bool = False) -> RecoverReport:
    """Recover ``what`` (backend | nginx | database) on every selected host.

    Never raises for a sick host. ``fix`` matters to ``database`` only: without
    it (no --yes) the database is diagnosed and nothing is changed.

    Each step is followed by a check, the next step is taken only when the check
    fails, and the procedure stops as soon as the host is healthy. With
    ``dry_run``, state is read for real and every change is recorded instead of
    made (``report.recorded``). Raises AdaptoError only before any host is
    touched (bad input, a host that cannot be reached, or a deploy holding a
    host's lock: exit 1).

    Recovery takes the deploy lock, as a deploy does: restarting instances while
    a deploy replaces them one by one would break its zero-downtime order (a
    dry run only reads the lock).
    """
    from adapto_ops.deploy.migrate import migration_host
    from adapto_ops.deploy.session import Session, parallel
    from adapto_ops.recover.backend import recover_backend
    from adapto_ops.recover.database import recover_database
    from adapto_ops.recover.nginx import recover_nginx

    check_what(what)
    started = time.perf_counter()
    secret_values = [v for v in selection.secrets().values.values() if v]
    report = RecoverReport(what, dry_run=dry_run)

    with Session(selection, reporter, dry_run=dry_run) as session:
        if fix:
            # A diagnosis only reads; anything that changes the host holds the deploy lock.
            session.lock(f"recover {what}", break_lock)
        # One database per environment: migrations are applied from one host only.
        index = migration_host(session.deployers)
        first = session.deployers[index].name if index is not None else None

        def one(d: HostDeployer) -> HostRecovery:
            if what == "database":
                return recover_database(d, secret_values, fix=fix, migrate_here=d.name == first)
            return recover_backend(d, secret_values) if what == "backend" else recover_nginx(d)

        results = parallel(session.deployers, one)
        for deployer, result in zip(session.deployers, results, strict=True):
            if isinstance(result, AdaptoError):
                reason = result.message.removeprefix(f"{deployer.name}: ")
                report.hosts.append(HostRecovery(deployer.name, still_failing=[reason]))
            elif isinstance(result, BaseException):
                raise result
            else:
                report.hosts.append(result)
            if dry_run:
                report.recorded.extend(getattr(deployer.t, "recorded", []))
    report.duration_s = time.perf_counter() - started
    return report
