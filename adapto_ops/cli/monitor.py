"""monitor, monitor install|uninstall."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from adapto_ops.cli.common import (
    EnvOpt,
    HostOpt,
    InventoryOpt,
    JsonOpt,
    VerboseOpt,
    app,
    dry_run_option,
    run_procedure,
    sub_app,
)
from adapto_ops.errors import EXIT_USAGE

monitor_app = sub_app(
    (
        "Health checks on a schedule: uptime and latency per check, alerts (Telegram, "
        "webhook) after failure_threshold failures and on resolution, optional auto-recover. "
        "Example: adapto monitor -e sandbox --interval 5 --alert telegram"
    ), invoke_without_command=True, no_args_is_help=False,
)
app.add_typer(monitor_app, name="monitor")


class AlertChannel(str, Enum):
    telegram = "telegram"
    webhook = "webhook"


@monitor_app.callback()
def monitor(
    ctx: typer.Context,
    env: Annotated[
        str | None, typer.Option("--env", "-e", metavar="NAME", help="environment to watch")
    ] = None,
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    interval: Annotated[
        float | None,
        typer.Option("--interval", metavar="S", min=0.2,
                     help="seconds between rounds [default: the inventory's monitor.interval_s]"),
    ] = None,
    auto_recover: Annotated[
        bool, typer.Option("--auto-recover",
                           help="run the matching `adapto recover` once per incident")
    ] = False,
    alert: Annotated[
        AlertChannel | None,
        typer.Option("--alert", help="alert channel [default: the inventory's monitor.alert]"),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="one round, print it, exit 0 if all pass else 1 "
                                          "(alerts only with --alert)")
    ] = False,
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", metavar="ADDR:PORT", help="serve Prometheus metrics there"),
    ] = None,
    max_rounds: Annotated[
        int | None, typer.Option("--rounds", metavar="N", min=1, help="stop after N rounds")
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="one JSON line per round instead of the live table")
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Watch an environment: a round of health checks every --interval seconds.

    Each round is appended to .adapto/monitor/<env>.jsonl beside the inventory.
    Example: adapto monitor -e sandbox --interval 5 --auto-recover --alert telegram
    """
    if ctx.invoked_subcommand is not None:
        return
    if env is None:
        typer.echo("error: missing option --env/-e (e.g. adapto monitor -e sandbox)", err=True)
        raise typer.Exit(EXIT_USAGE)

    run_procedure("adapto_ops.procedures.monitor", "run_monitor", inventory=inventory,
                  env_name=env, hosts=host, interval=interval, auto_recover=auto_recover,
                  alert=alert.value if alert else None, once=once, metrics=metrics,
                  as_json=json_output, max_rounds=max_rounds)




@monitor_app.command("install")
def monitor_install(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    alert: Annotated[
        AlertChannel | None,
        typer.Option("--alert", help="alert channel [default: the inventory's monitor.alert]"),
    ] = None,
    auto_recover: Annotated[
        bool, typer.Option("--auto-recover/--no-auto-recover",
                           help="let the installed monitor run `adapto recover`")
    ] = True,
    dry_run: Annotated[
        bool, dry_run_option("print the unit (or PM2 app) and the commands")] = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run the monitor unattended on each host: a systemd unit, or a PM2 app without systemd.

    Uploads a copy of the inventory and only the secrets the monitor needs (mode 0600)
    to <root>/shared/monitor/. Example: adapto monitor install -e production --alert telegram
    """
    run_procedure("adapto_ops.procedures.monitor", "run_monitor_install", inventory=inventory,
                  env_name=env, hosts=host, alert=alert.value if alert else None,
                  auto_recover=auto_recover, dry_run=dry_run, as_json=json_output)


@monitor_app.command("uninstall")
def monitor_uninstall(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Stop and remove the installed monitor (its results file is kept).

    Example: adapto monitor uninstall -e production
    """
    run_procedure("adapto_ops.procedures.monitor", "run_monitor_uninstall", inventory=inventory,
                  env_name=env, hosts=host, as_json=json_output)
