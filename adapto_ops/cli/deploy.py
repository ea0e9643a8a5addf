"""deploy, rollback, releases."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from adapto_ops.cli.common import (
    BreakLockOpt,
    EnvOpt,
    HostOpt,
    InventoryOpt,
    JsonOpt,
    VerboseOpt,
    YesOpt,
    app,
    dry_run_option,
    exit_with,
    run,
    run_procedure,
)


class DeployWhat(str, Enum):
    frontend = "frontend"
    backend = "backend"
    all = "all"


@app.command()
def deploy(
    what: Annotated[DeployWhat, typer.Argument(help="what to ship")] = DeployWhat.all,
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    dry_run: Annotated[
        bool, dry_run_option("print every command and config diff; change nothing")] = False,
    yes: YesOpt = False,
    skip_build: Annotated[
        bool, typer.Option("--skip-build", help="ship the existing frontend dist/ as it is")
    ] = False,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="build the frontend even if the build cache "
                           "(.adapto/build-cache) holds a build of the same inputs")
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
    The frontend build is skipped when its inputs (sources, lockfile, command,
    Node version) match a cached build; --rebuild builds anyway.
    Example: adapto deploy all -e sandbox --yes
    """

    def body() -> None:
        from adapto_ops.errors import AdaptoError
        from adapto_ops.procedures.deploy import run_deploy

        if rebuild and skip_build:
            raise AdaptoError("--rebuild and --skip-build contradict each other: pick one")

        exit_with(run_deploy(
            inventory=inventory, env_name=env, hosts=host, what=what.value, dry_run=dry_run,
            yes=yes, skip_build=skip_build, break_lock=break_lock, force=force, batch=batch,
            as_json=json_output, rebuild=rebuild,
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
    run_procedure("adapto_ops.procedures.deploy", "run_rollback", inventory=inventory,
                  env_name=env, hosts=host, to=to, yes=yes, break_lock=break_lock,
                  as_json=json_output)


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
    run_procedure("adapto_ops.procedures.deploy", "run_releases", inventory=inventory,
                  env_name=env, hosts=host, as_json=json_output)
