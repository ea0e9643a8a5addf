"""firewall: ufw's rules as the inventory asks (plan, apply, status)."""

from __future__ import annotations

from typing import Annotated

from adapto_ops.cli.common import (
    EnvOpt,
    HostOpt,
    InventoryOpt,
    JsonOpt,
    VerboseOpt,
    YesOpt,
    app,
    dry_run_option,
    run_procedure,
    sub_app,
)

firewall_app = sub_app(
    "ufw as the inventory asks: allow SSH/80/443, deny the backend ports; only the "
    "difference is applied, and a plan that would lock adapto out is refused.")
app.add_typer(firewall_app, name="firewall")

DryRunOpt = Annotated[bool, dry_run_option("read ufw, print the commands; change nothing")]


def _run(action: str, env: str, inventory: str | None, host: list[str] | None, *,
         dry_run: bool = False, yes: bool = False, json_output: bool = False) -> None:
    run_procedure("adapto_ops.procedures.firewall", "run_firewall", action=action,
                  inventory=inventory, env_name=env, hosts=host, dry_run=dry_run, yes=yes,
                  as_json=json_output)


@firewall_app.command("plan")
def plan(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Compare ufw with the inventory; print the commands `apply` would run (changes nothing).

    Exit 0 whether in sync or not; 1/2 when the plan is refused (it would lock adapto out).
    Example: adapto firewall plan -e production
    """
    _run("plan", env, inventory, host, json_output=json_output)


@firewall_app.command("apply")
def apply(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Apply the difference: the SSH port adapto is connected through first, `ufw enable` last.

    Deletes only rules adapto added (comment "adapto: ..."); others are reported and kept.
    Refuses, changing nothing, a plan that would lock adapto out. Exit 1 if ufw still
    differs afterwards or a foreign rule defeats a wanted one.
    Example: adapto firewall apply -e production --dry-run
    """
    _run("apply", env, inventory, host, dry_run=dry_run, yes=yes, json_output=json_output)


@firewall_app.command("status")
def status(
    env: EnvOpt = ...,  # type: ignore[assignment]
    inventory: InventoryOpt = None,
    host: HostOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """ufw's state and rules on each host, and whether they match the inventory.

    Example: adapto firewall status -e production --json
    """
    _run("status", env, inventory, host, json_output=json_output)
