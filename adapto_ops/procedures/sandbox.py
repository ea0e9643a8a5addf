"""`adapto sandbox up|down|status`: the CLI's bodies (tables, notes, exit codes).

The work is in :mod:`adapto_ops.sandbox` (sshd, nginx, PM2) and
:mod:`adapto_ops.sandbox.postgres` (the environment's PostgreSQL).
"""

from __future__ import annotations

import time

from adapto_ops.inventory.loader import inventory_path, load_inventory
from adapto_ops.output import console
from adapto_ops.sandbox import postgres as spg
from adapto_ops.sandbox.lifecycle import down, sandbox_hosts, up
from adapto_ops.sandbox.status import host_status


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in ("host", "ssh"))
    for row in rows:
        table.add_row(*row)
    console().print(table)


def run_sandbox(action: str, inventory: str | None, env_name: str, count: int | None,
                purge: bool = False) -> int:
    """`adapto sandbox up|down|status`: act, print a table per host, return the exit code."""
    loaded = load_inventory(inventory_path(inventory))
    if action == "status":
        states = [host_status(sh) for sh in sandbox_hosts(loaded, env_name, count)]
        mark = {True: "up", False: "DOWN"}
        databases = [spg.describe(s.sh) for s in states]
        _table(f"sandbox {env_name}: status",
               ["host", "ssh", "sshd", "nginx", "pm2", "postgres", "root"],
               [[s.sh.name, s.sh.endpoint, mark[s.sshd], mark[s.nginx], mark[s.pm2], db,
                 "exists" if s.root else "MISSING"]
                for s, db in zip(states, databases, strict=True)])
        bad = [s.sh.name for s, db in zip(states, databases, strict=True)
               if not s.ok or db.startswith("DOWN")]
        if bad:
            from adapto_ops.errors import CheckFailed

            raise CheckFailed(f"sandbox {env_name}: not fully up: {', '.join(bad)}; "
                              f"run `adapto sandbox up -e {env_name}`")
        return 0
    started, notes = time.monotonic(), []
    results = (up(loaded, env_name, count, notes) if action == "up"
               else down(loaded, env_name, count, purge, notes))
    if action == "up":
        notes += [spg.note(sh, loaded.resolve(sh.env.secrets.file or ""))
                  for sh, _ in results if spg.holds_database(sh)]
    for note in notes:
        print(f"sandbox: {note}")
    _table(f"sandbox {env_name}: {action} ({time.monotonic() - started:.1f} s)",
           ["host", "ssh", "nginx prefix", "PM2_HOME", "root", "state"],
           [[sh.name, sh.endpoint, str(sh.prefix), str(sh.pm2_home), str(sh.root), state]
            for sh, state in results])
    return 0
