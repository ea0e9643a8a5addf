"""secrets check|set."""

from __future__ import annotations

from typing import Annotated

import typer

from adapto_ops.cli.common import (
    EnvOpt,
    HostOpt,
    InventoryOpt,
    JsonObjectOpt,
    VerboseOpt,
    app,
    exit_with,
    run,
    run_procedure,
    sub_app,
)

secrets_app = sub_app(
    "The environment's secrets: which are missing (names only), and setting one from stdin. "
    "Example: adapto secrets check -e production",
)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("check")
def secrets_check(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    local: Annotated[
        bool, typer.Option("--local", help="only here (environment, secrets file): no SSH")
    ] = False,
    json_output: JsonObjectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """List the secret names the environment needs that are missing here or in a host's .env.

    Never shows a value. Exit 1 if any is missing. Example: adapto secrets check -e sandbox
    """
    run_procedure("adapto_ops.procedures.secrets", "run_secrets_check", inventory=inventory,
                  env_name=env, hosts=host, local_only=local, as_json=json_output)


# Extra arguments are accepted by the parser only to be refused with a clear message:
# a value typed after NAME must not be silently ignored, nor echoed in a usage error.
@secrets_app.command("set", context_settings={"allow_extra_args": True})
def secrets_set(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="a name from secrets.names")],
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    push: Annotated[
        bool, typer.Option("--push", help="then `deploy backend`: the new .env goes out with "
                                          "a release, instances restart one at a time")
    ] = False,
    verbose: VerboseOpt = False,
) -> None:
    """Store NAME's value, read from stdin (hidden prompt on a terminal), in secrets.file (0600).

    Example: printf %s "$KEY" | adapto secrets set SUPABASE_ANON_KEY -e production
    """

    def body() -> None:
        import sys

        from adapto_ops.procedures.secrets import run_secrets_set

        exit_with(run_secrets_set(inventory=inventory, env_name=env, name=name,
                                  argv_value=" ".join(ctx.args) if ctx.args else None,
                                  stream=sys.stdin, push=push))

    run(body)
