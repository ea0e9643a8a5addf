"""audit: the runbook's success criteria as one report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adapto_ops.cli.common import EnvOpt, InventoryOpt, VerboseOpt, app, exit_with, run


@app.command("audit")
def audit(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    json_output: Annotated[bool, typer.Option("--json", help="one JSON document")] = False,
    junit: Annotated[Path | None, typer.Option(
        "--junit", metavar="FILE", help="also write JUnit XML (one testsuite per host)")] = None,
    verbose: VerboseOpt = False,
) -> None:
    """Audit the environment against the runbook's success criteria; exit 1 on any fail.

    Health and its budgets, uptime (monitor history, 99.5 %), certificates, the
    firewall as planned, secrets complete, RLS everywhere (db check) and pending
    OS security updates: each line pass, warn or fail with its evidence.

    Example: adapto audit -e sandbox --junit audit.xml
    """

    def body() -> None:
        from adapto_ops.procedures.audit import run_audit

        exit_with(run_audit(inventory=inventory, env_name=env, as_json=json_output,
                            junit=junit))

    run(body)
