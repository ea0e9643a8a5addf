"""The `adapto` command line: thin Typer commands over the procedures.

Start-up matters (`adapto --help` answers in well under 150 ms), so this
module imports only typer; pydantic, jinja2, paramiko, fabric, httpx and rich
are imported inside the commands that use them. Help is click's plain
formatter for the same reason: typer's rich help alone costs ~80 ms.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from adapto_ops.errors import EXIT_USAGE, AdaptoError

app = typer.Typer(
    name="adapto",
    help=(
        "The AI-platform runbook as a program: render configs, deploy over SSH, "
        "check health, read logs and recover.\n\n"
        "Every command reads ./inventory.yaml (or -i PATH, or $ADAPTO_INVENTORY) "
        "and acts on one environment (-e NAME)."
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def sub_app(help_text: str, **settings: object) -> typer.Typer:
    """A command group with the top level's settings: plain help (start-up), -h, no args = help."""
    options: dict[str, object] = {"no_args_is_help": True, "rich_markup_mode": None,
                                  "context_settings": {"help_option_names": ["-h", "--help"]}}
    return typer.Typer(help=help_text, **(options | settings))  # type: ignore[arg-type]


InventoryOpt = Annotated[
    str | None,
    typer.Option(
        "--inventory", "-i", metavar="PATH",
        help="inventory file [default: $ADAPTO_INVENTORY or ./inventory.yaml]",
    ),
]
EnvOpt = Annotated[
    str, typer.Option("--env", "-e", metavar="NAME", help="environment from the inventory")
]
HostOpt = Annotated[
    list[str] | None,
    typer.Option("--host", metavar="NAME", help="only this host (repeatable)"),
]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="full tool output and tracebacks")
]

T = TypeVar("T")


def _verbose_requested() -> bool:
    return "--verbose" in sys.argv or "-v" in sys.argv or bool(os.environ.get("ADAPTO_VERBOSE"))


def run(action: Callable[[], T]) -> T:
    """Run a command body: user errors become one-line messages and exit codes."""
    try:
        return action()
    except AdaptoError as exc:
        if _verbose_requested():
            import traceback

            traceback.print_exc()
        for line in exc.lines():
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


class RenderWhat(str, Enum):
    nginx = "nginx"
    pm2 = "pm2"
    firewall = "firewall"
    env = "env"
    logrotate = "logrotate"
    all = "all"


@app.command()
def render(
    what: Annotated[RenderWhat, typer.Argument(help="which config")] = RenderWhat.all,
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", metavar="DIR", help="write the files under DIR"),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="validate with nginx -t, node, ufw --dry-run, logrotate")
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Render configs from templates/ for an environment; print, write or check them.

    Secret values are masked on stdout; files written with --out hold the real
    values (mode 0600). Example: adapto render nginx -e sandbox --check
    """

    def body() -> None:
        from adapto_ops.procedures.render import run_render

        code = run_render(
            inventory=inventory, env_name=env, hosts=host, what=what.value,
            out=out, check=check, verbose=verbose,
        )
        if code:
            raise typer.Exit(code)

    run(body)


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write it")] = Path("inventory.yaml"),
    project: Annotated[str, typer.Option(help="project name")] = "my-platform",
    domain: Annotated[str, typer.Option(help="the site's domain")] = "example.com",
    address: Annotated[str, typer.Option(help="production server address")] = "203.0.113.10",
) -> None:
    """Write a commented starter inventory.yaml; never overwrites an existing file.

    Example: adapto init --project shop --domain shop.example.com
    """

    def body() -> None:
        from adapto_ops.procedures.init import write_starter_inventory

        write_starter_inventory(path, project=project, domain=domain, address=address)
        typer.echo(f"wrote {path}; next: adapto render all -e production -i {path}")

    run(body)


# --- deploy, rollback, releases ----------------------------------------------------

JsonOpt = Annotated[bool, typer.Option("--json", help="one JSON event per line (for CI)")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation")]
BreakLockOpt = Annotated[
    bool, typer.Option("--break-lock", help="remove a stale deploy lock left by a dead deploy")
]


class DeployWhat(str, Enum):
    frontend = "frontend"
    backend = "backend"
    all = "all"


def _exit_with(code: int) -> None:
    if code:
        raise typer.Exit(code)


@app.command()
def deploy(
    what: Annotated[DeployWhat, typer.Argument(help="what to ship")] = DeployWhat.all,
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print every command and config diff; change nothing")
    ] = False,
    yes: YesOpt = False,
    skip_build: Annotated[
        bool, typer.Option("--skip-build", help="ship the existing frontend dist/ as it is")
    ] = False,
    break_lock: BreakLockOpt = False,
    force: Annotated[
        bool, typer.Option("--force", help="deploy even if the live release has this content")
    ] = False,
    batch: Annotated[
        int | None,
        typer.Option("--batch", metavar="N", min=1,
                     help="switch and restart N hosts at a time, each batch health-gated"),
    ] = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Build, upload over SSH, switch atomically, restart without downtime, gate on health.

    A release that fails its health checks is rolled back by itself (exit 1).
    Example: adapto deploy all -e sandbox --yes
    """

    def body() -> None:
        from adapto_ops.procedures.deploy import run_deploy

        _exit_with(run_deploy(
            inventory=inventory, env_name=env, hosts=host, what=what.value, dry_run=dry_run,
            yes=yes, skip_build=skip_build, break_lock=break_lock, force=force, batch=batch,
            as_json=json_output,
        ))

    run(body)


@app.command()
def rollback(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    to: Annotated[str | None, typer.Option("--to", metavar="ID", help="release id")] = None,
    yes: YesOpt = False,
    break_lock: BreakLockOpt = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Switch back to the previous live release (or --to ID) without downtime.

    Example: adapto rollback -e sandbox --to 20261125120000
    """

    def body() -> None:
        from adapto_ops.procedures.deploy import run_rollback

        _exit_with(run_rollback(inventory=inventory, env_name=env, hosts=host, to=to, yes=yes,
                                break_lock=break_lock, as_json=json_output))

    run(body)


@app.command()
def releases(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """List the releases on each host: id, age, revision, which is current, last result.

    Example: adapto releases -e sandbox --json
    """

    def body() -> None:
        from adapto_ops.procedures.deploy import run_releases

        _exit_with(run_releases(inventory=inventory, env_name=env, hosts=host,
                                as_json=json_output))

    run(body)


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

    def body() -> None:
        from adapto_ops.procedures.status import run_status

        _exit_with(run_status(inventory=inventory, env_name=env, hosts=host,
                              as_json=json_output))

    run(body)


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

    def body() -> None:
        from adapto_ops.procedures.health import run_health

        _exit_with(run_health(inventory=inventory, env_name=env, hosts=host, as_json=json_output,
                              junit=junit, strict=strict))

    run(body)


# --- monitor -------------------------------------------------------------------

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

    def body() -> None:
        from adapto_ops.procedures.monitor import run_monitor

        _exit_with(run_monitor(
            inventory=inventory, env_name=env, hosts=host, interval=interval,
            auto_recover=auto_recover, alert=alert.value if alert else None, once=once,
            metrics=metrics, as_json=json_output, max_rounds=max_rounds))

    run(body)


@app.command()
def recover(
    what: Annotated[str, typer.Argument(metavar="backend|nginx|database",
                                        help="what to bring back")],
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="read the state, print the commands; change nothing")
    ] = False,
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

    def body() -> None:
        from adapto_ops.procedures.recover import run_recover

        _exit_with(run_recover(inventory=inventory, env_name=env, hosts=host, what=what,
                               dry_run=dry_run, yes=yes, as_json=json_output,
                               break_lock=break_lock))

    run(body)


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
        _exit_with(run_logs(inventory=inventory, env_name=env, hosts=host, options=options))

    run(body)


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
        bool, typer.Option("--dry-run", help="print the unit (or PM2 app) and the commands")
    ] = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Run the monitor unattended on each host: a systemd unit, or a PM2 app without systemd.

    Uploads a copy of the inventory and only the secrets the monitor needs (mode 0600)
    to <root>/shared/monitor/. Example: adapto monitor install -e production --alert telegram
    """

    def body() -> None:
        from adapto_ops.procedures.monitor import run_monitor_install

        _exit_with(run_monitor_install(
            inventory=inventory, env_name=env, hosts=host, alert=alert.value if alert else None,
            auto_recover=auto_recover, dry_run=dry_run, as_json=json_output))

    run(body)


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

    def body() -> None:
        from adapto_ops.procedures.monitor import run_monitor_uninstall

        _exit_with(run_monitor_uninstall(inventory=inventory, env_name=env, hosts=host,
                                         as_json=json_output))

    run(body)


# --- telegram ------------------------------------------------------------------

telegram_app = sub_app(
    "The platform's Telegram bot. Example: adapto telegram webhook info -e production",
)
webhook_app = sub_app(
    (
        "The bot's webhook: where Telegram posts updates (https://<site>/api/telegram/bot/"
        "webhook). Example: adapto telegram webhook set -e production"
    ),
)
app.add_typer(telegram_app, name="telegram")
telegram_app.add_typer(webhook_app, name="webhook")
DropPendingOpt = Annotated[
    bool, typer.Option("--drop-pending-updates",
                       help="also discard the updates Telegram has not delivered yet")
]
TelegramJsonOpt = Annotated[bool, typer.Option("--json", help="one JSON object")]


def _webhook(action: str, inventory: str | None, env: str, as_json: bool,
             drop_pending_updates: bool = False) -> None:
    def body() -> None:
        from adapto_ops.procedures.telegram import run_webhook

        _exit_with(run_webhook(inventory=inventory, env_name=env, action=action,
                               as_json=as_json, drop_pending_updates=drop_pending_updates))

    run(body)


@webhook_app.command("set")
def telegram_webhook_set(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    drop_pending_updates: DropPendingOpt = False,
    json_output: TelegramJsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Register the webhook URL the inventory gives, with its secret token and allowed_updates.

    Example: adapto telegram webhook set -e production
    """
    _webhook("set", inventory, env, json_output, drop_pending_updates)


@webhook_app.command("info")
def telegram_webhook_info(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    json_output: TelegramJsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Show getWebhookInfo: URL, pending updates, last error and its age, warnings.

    Example: adapto telegram webhook info -e production --json
    """
    _webhook("info", inventory, env, json_output)


@webhook_app.command("delete")
def telegram_webhook_delete(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    drop_pending_updates: DropPendingOpt = False,
    json_output: TelegramJsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Remove the webhook (Telegram then keeps updates for getUpdates).

    Example: adapto telegram webhook delete -e production
    """
    _webhook("delete", inventory, env, json_output, drop_pending_updates)


# --- sandbox -------------------------------------------------------------------

db_app = sub_app(
    (
        "The backend's database migrations outside a deploy (`deploy` runs them itself, "
        "before the switch): the inventory's backend.migrate on the first backend host."
    ),
)
app.add_typer(db_app, name="db")


@db_app.command("migrate")
def db_migrate(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    break_lock: BreakLockOpt = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Apply the pending migrations from the live release, holding the deploy lock.

    Example: adapto db migrate -e sandbox
    """

    def body() -> None:
        from adapto_ops.procedures.db import run_db_migrate

        _exit_with(run_db_migrate(inventory=inventory, env_name=env, break_lock=break_lock,
                                  as_json=json_output))

    run(body)


@db_app.command("status")
def db_status(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
    verbose: VerboseOpt = False,
) -> None:
    """List the migrations the live release has that the database has not applied.

    Example: adapto db status -e sandbox --json
    """

    def body() -> None:
        from adapto_ops.procedures.db import run_db_status

        _exit_with(run_db_status(inventory=inventory, env_name=env, as_json=json_output))

    run(body)


sandbox_app = sub_app(
    (
        "A local rehearsal server per host of an environment with a `sandbox:` section: "
        "a real sshd, nginx with its own prefix and PM2 with its own PM2_HOME, on "
        "loopback addresses."
    ),
)
app.add_typer(sandbox_app, name="sandbox")

SandboxEnvOpt = Annotated[
    str, typer.Option("--env", "-e", metavar="NAME", help="environment with a sandbox: section")
]
SandboxHostsOpt = Annotated[
    int | None,
    typer.Option("--hosts", metavar="N", min=1, help="only the first N hosts of the environment"),
]


def _sandbox(action: str, inventory: str | None, env: str, hosts: int | None,
             purge: bool = False) -> None:
    def body() -> None:
        from adapto_ops.procedures.sandbox import run_sandbox

        code = run_sandbox(action, inventory, env, hosts, purge=purge)
        if code:
            raise typer.Exit(code)

    run(body)


@sandbox_app.command("up")
def sandbox_up(
    env: SandboxEnvOpt = "sandbox",
    inventory: InventoryOpt = None,
    hosts: SandboxHostsOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Start (or confirm) sshd, nginx and PM2 of every sandbox host; idempotent.

    Example: adapto sandbox up -e sandbox --hosts 2
    """
    _sandbox("up", inventory, env, hosts)


@sandbox_app.command("down")
def sandbox_down(
    env: SandboxEnvOpt = "sandbox",
    inventory: InventoryOpt = None,
    hosts: SandboxHostsOpt = None,
    purge: Annotated[
        bool, typer.Option("--purge", help="also delete the hosts' sandbox, root and nginx folders")
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Stop PM2, nginx and sshd of every sandbox host (files are kept unless --purge).

    Example: adapto sandbox down --purge
    """
    _sandbox("down", inventory, env, hosts, purge)


@sandbox_app.command("status")
def sandbox_status(
    env: SandboxEnvOpt = "sandbox",
    inventory: InventoryOpt = None,
    hosts: SandboxHostsOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Show whether each sandbox host's sshd, nginx, PM2 daemon and root are up; exit 1 if not.

    Example: adapto sandbox status
    """
    _sandbox("status", inventory, env, hosts)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as exc:
        # click reports usage errors with exit code 2, which is ours too.
        raise SystemExit(exc.code if exc.code is not None else 0) from None


if __name__ == "__main__":  # pragma: no cover
    main()

__all__ = ["EXIT_USAGE", "app", "main"]
