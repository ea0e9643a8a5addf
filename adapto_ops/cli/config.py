"""render and init: configs from templates, and a starter inventory."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from adapto_ops.cli.common import (
    EnvOpt,
    HostOpt,
    InventoryOpt,
    VerboseOpt,
    app,
    run,
)


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
    sandbox_address: Annotated[str, typer.Option(
        help="loopback address of the `sandbox` environment's first host")] = "127.0.0.2",
    sandbox_dir: Annotated[str, typer.Option(
        help="folder for the sandbox's files (a <project> folder is made in it)")
    ] = "/var/tmp/adapto-sandbox",
) -> None:
    """Write a commented starter inventory.yaml (production, and its rehearsal on loopback
    as environment `sandbox`); never overwrites an existing file.

    Example: adapto init --project shop --domain shop.example.com
    """

    def body() -> None:
        from adapto_ops.procedures.init import write_starter_inventory

        write_starter_inventory(path, project=project, domain=domain, address=address,
                                sandbox_address=sandbox_address, sandbox_dir=sandbox_dir)
        where = "" if path == Path("inventory.yaml") else f" -i {path}"
        typer.echo(f"wrote {path}; next: adapto render all -e production{where} --check, "
                   f"or rehearse: adapto sandbox up{where} && "
                   f"adapto deploy all -e sandbox{where}")

    run(body)
