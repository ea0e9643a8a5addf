"""sandbox up|down|status."""

from __future__ import annotations

from typing import Annotated

import typer

from adapto_ops.cli.common import (
    InventoryOpt,
    VerboseOpt,
    app,
    run,
    sub_app,
)

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
