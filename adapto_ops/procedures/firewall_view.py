"""How `adapto firewall plan` and `status` look to a person (Rich); --json is in firewall.py."""

from __future__ import annotations

from typing import Any

from adapto_ops.output import console


def print_outcomes(action: str, env_name: str, outcomes: list[Any]) -> None:
    """Per host: ufw's state and rules (status), then in sync or the commands that would run."""
    from rich.markup import escape

    out = console()
    for o in outcomes:
        plan = o.plan
        if plan is None:
            out.print(f"[bold]{escape(o.host)}[/] ({env_name}): [red]unreadable[/]: "
                      f"{escape(o.error or '')}")
            continue
        out.print(f"[bold]{escape(o.host)}[/] ({env_name}): ufw {escape(plan.state)}, "
                  f"SSH port {plan.ssh_port}, read in {o.seconds:.2f}s")
        if action == "status":
            for rule in plan.rules:
                mark = "adapto" if rule.managed else "foreign"
                out.print(f"  {escape(rule.describe())}  [dim]({mark})[/]")
            if not plan.rules:
                out.print("  (no rules)")
        if plan.refusal:
            out.print(f"  [red]refused[/]: {escape(plan.refusal)}")
            continue
        if plan.in_sync:
            out.print("  [green]in sync[/]: nothing to change")
        else:
            for line in plan.settings:
                out.print(f"  [yellow]~[/] {escape(line)}")
            for rule in plan.missing:
                out.print(f"  [green]+[/] {escape(rule.describe())}")
            for rule in plan.deletions:
                out.print(f"  [red]-[/] {escape(rule.describe())}")
            if plan.changes:
                out.print("  commands (adapto firewall apply):")
                for command in plan.changes:
                    out.print(f"    {escape(command)}")
        for rule in plan.foreign:
            out.print(f"  [blue]·[/] kept, not adapto's: {escape(rule.describe())}")
        for conflict in plan.conflicts:
            out.print(f"  [red]![/] {escape(conflict)}")
