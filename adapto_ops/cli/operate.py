"""status, health, recover, logs: reading and healing a running environment."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from adapto_ops.cli.common import (
    BreakLockOpt,
    EnvOpt,
    HostOpt,
    InventoryOpt,
    JsonOpt,
    VerboseOpt,
    app,
    dry_run_option,
    exit_with,
    run,
    run_procedure,
)


@app.command()
def status(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="one JSON object per host")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Show each host at a glance: PM2, nginx, release, certificate, firewall, disk, last deploy.

    Reports only (exit 1 just for an unreachable host); `adapto health` judges.
    Example: adapto status -e sandbox --json
    """
    run_procedure("adapto_ops.procedures.status", "run_status", inventory=inventory,
                  env_name=env, hosts=host, as_json=json_output)


@app.command()
def health(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="one application/health+json document")] = False,
    junit: Annotated[Path | None, typer.Option(
        "--junit", metavar="FILE", help="also write JUnit XML (one testsuite per host)")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="warnings (budget exceeded, certificate < 14 days) fail too")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Check what users see and what the hosts run, all at once: HTTPS page and API
    (certificate verified, budgets), HTTP->HTTPS, HSTS, certificate days, a WebSocket
    echo; on each host every instance, PM2, nginx -t and disk.

    Each failure names its kind and the next command. Exit 1 on any failure
    (warnings too with --strict). Example: adapto health -e sandbox --junit health.xml
    """
    run_procedure("adapto_ops.procedures.health", "run_health", inventory=inventory,
                  env_name=env, hosts=host, as_json=json_output, junit=junit, strict=strict)




@app.command()
def recover(
    what: Annotated[str, typer.Argument(metavar="backend|nginx|database",
                                        help="what to bring back")],
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    dry_run: Annotated[
        bool, dry_run_option("read the state, print the commands; change nothing")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="do not ask for confirmation; database: "
                                               "also end stuck sessions, apply migrations")
    ] = False,
    break_lock: BreakLockOpt = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run the runbook's recovery: each step checked, escalating only while it still fails.

    backend: restart only the failing PM2 instances one at a time (or bring them back
    from the current release if the PM2 daemon is gone); nginx: nginx -t, the last good
    site config back, reload, start or restart; database: from the host, the connection
    (DNS, TCP, TLS, authentication), connections against max_connections, sessions idle in
    a transaction or blocking others, pending migrations, size; only with --yes it
    terminates those sessions and applies the migrations. Exit 0 when healthy at the end,
    else 1 naming what still fails. Changes hold the deploy lock.

    Example: adapto recover backend -e sandbox; adapto recover database -e sandbox --yes
    """
    run_procedure("adapto_ops.procedures.recover", "run_recover", inventory=inventory,
                  env_name=env, hosts=host, what=what, dry_run=dry_run, yes=yes,
                  as_json=json_output, break_lock=break_lock)


# --- logs ----------------------------------------------------------------------


class LogsWhat(str, Enum):
    backend = "backend"
    nginx = "nginx"
    nginx_error = "nginx-error"
    nginx_access = "nginx-access"


@app.command()
def logs(
    what: Annotated[LogsWhat, typer.Argument(help="PM2's backend logs, or nginx's")],
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    lines: Annotated[
        int | None,
        typer.Option("--lines", "-n", metavar="N", min=0,
                     help="last N lines per file [default: 100; 10 with --follow]"),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing new lines until Ctrl-C")
    ] = False,
    grep: Annotated[
        str | None, typer.Option("--grep", "-g", metavar="RE", help="only lines matching "
                                 "this Python regular expression")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="WHEN",
                                 help="only lines since 10m, 2h, 1d or an ISO time (UTC)")
    ] = None,
    instance: Annotated[
        int | None, typer.Option("--instance", metavar="PORT",
                                 help="only the backend instance on this port")
    ] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Show the last lines of PM2's or nginx's log files over SSH, or follow them.

    Lines from several files carry a 'host file |' prefix; secret values are masked.
    Example: adapto logs backend -e sandbox --since 10m --grep 'ERROR|Traceback' -f
    """

    def body() -> None:
        from adapto_ops.procedures.logs import LogOptions, run_logs

        options = LogOptions(what=what.value, lines=lines, follow=follow, grep=grep,
                             since=since, instance=instance)
        exit_with(run_logs(inventory=inventory, env_name=env, hosts=host, options=options))

    run(body)
