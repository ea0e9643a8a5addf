"""`adapto db migrate|status`: the backend's migrations outside a deploy.

Both run ``backend.migrate`` (``--status`` appended for status) on the
environment's first backend host, from the live release's backend folder with
the shared .env, as the running backend sees it. `migrate` holds that host's
deploy lock, so it never runs while a deploy migrates; `status` only reads.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from adapto_ops.errors import EXIT_OK, AdaptoError, OperationFailed
from adapto_ops.events import Event, ListReporter
from adapto_ops.procedures.deploy import make_reporter
from adapto_ops.selection import Selection, select


def _migration_selection(inventory: str | None, env_name: str) -> tuple[Selection, str]:
    """The environment narrowed to its first backend host, and the migrate command."""
    selection = select(inventory, env_name)
    command = selection.env.backend.migrate
    if not command:
        raise AdaptoError(f"{selection.loaded.path}: environment {env_name!r} has no "
                          "backend.migrate; add the backend's migrate command, e.g. "
                          "`migrate: .venv/bin/python -m aiplatform.migrate`")
    hosts = selection.env.hosts_with("backend")
    if not hosts:
        raise AdaptoError(f"{selection.loaded.path}: environment {env_name!r} has no host "
                          "with the backend role")
    return select(inventory, env_name, [hosts[0].name]), command


def _run_on_live(selection: Selection, reporter: Any, *, status: bool,
                 break_lock: bool = False) -> tuple[str, str, Any]:
    """(host, live release, Result) of the migrate command on the live release."""
    from adapto_ops.commands import db as db_cmd
    from adapto_ops.deploy.session import Session

    command = selection.env.backend.migrate
    assert command is not None
    with Session(selection, reporter, dry_run=False) as session:
        d = session.deployers[0]
        state = (d.read_state() if status
                 else session.lock("db migrate", break_lock)[0])
        if not state.current:
            raise AdaptoError(f"{d.name}: no release is live yet; `adapto deploy` migrates "
                              "before its first switch")
        backend_dir = f"{d.layout.current}/backend"
        with d.step("migrate", f"{command}{' --status' if status else ''} "
                    f"(release {state.current})") as step:
            result = d.t.run(db_cmd.migrate(backend_dir, d.layout.env_file, command,
                                            status=status),
                             check=False, mutates=not status, timeout=1800, what="migrate")
            if not result.ok:
                raise OperationFailed(f"{d.name}: {'migration status' if status else 'migration'}"
                                      f" failed: {result.last_error_line()}")
            lines = [ln.strip() for ln in result.stdout.splitlines() if ln.strip()]
            step.done_message = lines[-1] if lines else "done"
        return d.name, state.current, result


def run_db_migrate(*, inventory: str | None, env_name: str, break_lock: bool,
                   as_json: bool) -> int:
    """Apply the pending migrations now; exit 1 (one error line) when one fails."""
    selection, _ = _migration_selection(inventory, env_name)
    reporter = make_reporter(as_json)
    try:
        host, release, result = _run_on_live(selection, reporter, status=False,
                                             break_lock=break_lock)
        applied = [ln.split(None, 1)[1] for ln in result.stdout.splitlines()
                   if ln.startswith("applied ")]
        reporter.emit(Event("result", "db migrate", "ok", host,
                            {"release": release, "applied": applied}))
    finally:
        reporter.close()
    return EXIT_OK


def run_db_status(*, inventory: str | None, env_name: str, as_json: bool) -> int:
    """List the pending migrations (the command's `--status`); exit 0 whether or not any."""
    from adapto_ops.commands import db as db_cmd

    selection, _ = _migration_selection(inventory, env_name)
    host, release, result = _run_on_live(selection, ListReporter(), status=True)
    pending, total = db_cmd.parse_status(result.stdout)
    if as_json:
        print(json.dumps({"env": env_name, "host": host, "release": release,
                          "pending": pending, "total": total}))
        return EXIT_OK
    out = sys.stdout
    for name in pending:
        out.write(f"pending  {name}\n")
    of = f" of {total}" if total is not None else ""
    out.write(f"{env_name}/{host} (release {release}): {len(pending)} pending{of}\n")
    return EXIT_OK
