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
        typer.Option("--out", "-o", metavar="DIR", help="write files under DIR instead of printing"),
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
