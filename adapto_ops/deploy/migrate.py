"""The deploy's migration step: once per environment, from the new release, before the switch.

`deploy` calls :func:`migrate_release` after every host has the new release
(prepared, not live) and before nginx or `current` change, while it holds the
lock on every host. It runs ``backend.migrate`` on the environment's first
backend host, in the new release's backend folder, with the release's staged
env file (the shared .env still belongs to the live release). A failure raises
:class:`MigrationFailed`; the deploy then drops the new release everywhere, so
every host stays on its old release, and each host's history records it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from adapto_ops.commands import db as db_cmd
from adapto_ops.commands import release as rel
from adapto_ops.deploy.host import HostDeployer
from adapto_ops.errors import AdaptoError, OperationFailed


class MigrationFailed(OperationFailed):
    """The migrate command exited non-zero (exit code 1)."""


def migration_host(deployers: list[HostDeployer]) -> int | None:
    """Index of the first selected backend host, None when no host runs the backend."""
    return next((i for i, d in enumerate(deployers) if "backend" in d.target.host.roles), None)


def migrate_release(d: HostDeployer, release_id: str) -> str:
    """Run the migrate command from ``release_id``'s backend; its last output line on success."""
    command = d.env.backend.migrate
    assert command is not None
    backend_dir = d.layout.release(release_id) + "/backend"
    with d.step("migrate", f"{command} (from {release_id})") as step:
        result = d.t.run(db_cmd.migrate(backend_dir, rel.staged_env(d.layout, release_id),
                                        command), check=False, timeout=1800, what="migrate")
        if not result.ok:
            raise MigrationFailed(f"{d.name}: migration failed, every host stays on its "
                                  f"current release: {result.last_error_line()}")
        lines = [ln.strip() for ln in result.stdout.splitlines() if ln.strip()]
        step.done_message = lines[-1] if lines else "done"
        return step.done_message


def migrate_step(deployers: list[HostDeployer], release_id: str, record: dict[str, Any],
                 *, dry_run: bool) -> list[BaseException | None]:
    """Migrate on the first backend host; per deployer, the exception that stopped it (or None).

    On failure every host's history gets ``record`` with result "failed" and the
    error (a dry run only records the command, like every other change).
    """
    results: list[BaseException | None] = [None] * len(deployers)
    index = migration_host(deployers)
    if index is None:
        return results
    started = time.perf_counter()
    try:
        migrate_release(deployers[index], release_id)
    except AdaptoError as exc:
        results[index] = exc
        if not dry_run:
            _record_failure(deployers, {**record, "result": "failed", "error": exc.message,
                                        "step": "migrate",
                                        "duration_s": round(time.perf_counter() - started, 2)})
    return results


def _record_failure(deployers: list[HostDeployer], record: dict[str, Any]) -> None:
    """One history line per host: this deploy failed before the switch."""
    for d in deployers:
        line = json.dumps(record) + "\n"
        try:
            d.t.run(rel.append_history(d.layout), stdin=line.encode(), check=False,
                    what="append history")
        except AdaptoError:
            pass  # an unreachable host keeps no line; the error is reported anyway
