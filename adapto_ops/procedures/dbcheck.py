"""`adapto db check -e ENV | --database-url URL`: the RLS audit, where the database is reached.

With ``-e ENV`` the lints run on the environment's first backend host, as the
backend connects (its DATABASE_URL, read there from the shared .env): the
database may listen on the host's loopback only. With ``--database-url`` they
run here, for CI against a database of its own. Either way one script prints
one JSON line (:mod:`adapto_ops.commands.dbcheck`) that
:mod:`adapto_ops.dbaudit` reads. Exit 0 clean, 1 on any finding or when the
database cannot be checked, 2 on bad input.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from adapto_ops.dbaudit import LINTS, DbCheck, parse_output
from adapto_ops.errors import EXIT_FAILED, EXIT_OK, AdaptoError
from adapto_ops.selection import Selection


def check_url(url: str) -> DbCheck:
    """Run the lints from this machine against ``url`` (passed in the environment, not argv)."""
    from adapto_ops.commands import dbcheck

    env = dict(os.environ, **{dbcheck.URL_ENV: url})
    try:
        result = subprocess.run([sys.executable, "-"], input=dbcheck.script(env_file=None),
                                capture_output=True, text=True, env=env, check=False,
                                timeout=dbcheck.TIMEOUT_S * 3)
    except subprocess.TimeoutExpired:
        return DbCheck(error="the check did not finish in time")
    out = parse_output(result.stdout.replace(url, "****"))
    if out.error and not result.stdout.strip():
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        out.error = f"the check failed: {last.replace(url, '****')[:200]}"
    return out


def check_environment(selection: Selection) -> tuple[str, DbCheck]:
    """(host, answer): the lints run on the first backend host with the backend's DATABASE_URL."""
    from adapto_ops.commands import dbcheck
    from adapto_ops.deploy.session import open_transport
    from adapto_ops.recover.report import mask_secrets

    hosts = [t for t in selection.targets if "backend" in t.host.roles]
    if not hosts:
        raise AdaptoError(f"{selection.loaded.path}: environment {selection.env_name!r} has "
                          "no host with the backend role")
    target = hosts[0]
    command, stdin = dbcheck.on_host(target.layout)
    transport = open_transport(selection, target)
    try:
        result = transport.run(command, check=False, stdin=stdin, mutates=False,
                               what="check the database's RLS", timeout=120)
    finally:
        transport.close()
    secrets = list(selection.secrets().values.values())
    out = parse_output(mask_secrets(result.stdout, secrets))
    if out.error and not result.stdout.strip():
        out.error = f"the check failed on {target.host.name}: " \
                    f"{mask_secrets(result.last_error_line(), secrets)}"
    return target.host.name, out


def print_text(check: DbCheck, where: str) -> None:
    """One line per finding, then a summary line (stdout)."""
    write = sys.stdout.write
    for f in check.findings:
        write(f"{f.level:<5}  {f.lint}  {f.detail}\n       fix: {f.fix}\n")
    if check.error:
        return
    who = f"{check.role}@{check.database}" if check.role else where
    if check.findings:
        write(f"{where}: {len(check.findings)} finding(s) in {who} "
              f"({len(LINTS)} lints of Supabase's linter and the app role)\n")
    else:
        write(f"{where}: clean: {who} passes all {check.lints_run} RLS lints\n")


def run_db_check(*, inventory: str | None, env_name: str | None, database_url: str | None,
                 as_json: bool) -> int:
    """The CLI's body; returns the exit code."""
    from adapto_ops.errors import OperationFailed
    from adapto_ops.selection import select

    if bool(env_name) == bool(database_url):
        raise AdaptoError("db check: give either -e ENV (run on the environment's backend "
                          "host) or --database-url URL / $ADAPTO_DATABASE_URL (run from "
                          "here), not both or neither")
    if database_url:
        where, check = "database-url", check_url(database_url)
    else:
        assert env_name is not None
        host, check = check_environment(select(inventory, env_name))
        where = f"{env_name}/{host}"
    if as_json:
        print(json.dumps({"where": where, **check.as_dict()}))
    else:
        print_text(check, where)
    if check.error:
        if as_json:
            return EXIT_FAILED
        hint = ("; or check it from where it is reachable: adapto db check --database-url URL"
                if "no python with psycopg" in check.error else "")
        raise OperationFailed(f"{where}: database not checked: {check.error}{hint}")
    return EXIT_OK if check.ok else EXIT_FAILED
