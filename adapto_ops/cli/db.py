"""db migrate|status|check."""

from __future__ import annotations

from typing import Annotated

import typer

from adapto_ops.cli.common import (
    BreakLockOpt,
    EnvOpt,
    InventoryOpt,
    JsonObjectOpt,
    JsonOpt,
    VerboseOpt,
    app,
    run_procedure,
    sub_app,
)

db_app = sub_app(
    (
        "The backend's database: its migrations outside a deploy (`deploy` runs them "
        "itself, before the switch), the inventory's backend.migrate on the first backend "
        "host; and `check`, the RLS audit of Supabase's database linter."
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
    run_procedure("adapto_ops.procedures.db", "run_db_migrate", inventory=inventory,
                  env_name=env, break_lock=break_lock, as_json=json_output)


@db_app.command("status")
def db_status(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    json_output: JsonObjectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """List the migrations the live release has that the database has not applied.

    Example: adapto db status -e sandbox --json
    """
    run_procedure("adapto_ops.procedures.db", "run_db_status", inventory=inventory,
                  env_name=env, as_json=json_output)


@db_app.command("check")
def db_check(
    env: Annotated[str | None, typer.Option("--env", "-e", metavar="NAME",
                                            help="run on this environment's backend host, "
                                                 "with the backend's DATABASE_URL")] = None,
    database_url: Annotated[str | None, typer.Option(
        "--database-url", metavar="URL", envvar="ADAPTO_DATABASE_URL",
        help="check this database from here instead; prefer $ADAPTO_DATABASE_URL "
             "(a command line is visible to every user of the machine)")] = None,
    inventory: InventoryOpt = None,
    json_output: JsonObjectOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """The RLS audit of Supabase's database linter; exit 1 on any finding.

    Tables without RLS, RLS with no policy, policies trusting user_metadata,
    security-definer views, functions with a mutable search_path, and the
    application role owning tables or bypassing RLS.

    Example: adapto db check -e sandbox --json
    """
    run_procedure("adapto_ops.procedures.dbcheck", "run_db_check", inventory=inventory,
                  env_name=env, database_url=database_url, as_json=json_output)
