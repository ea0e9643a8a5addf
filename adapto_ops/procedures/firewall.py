"""`adapto firewall plan|apply|status`: ufw as the inventory asks, changed by the difference only.

Each host is read in one round trip (ufw's state, its rules as `ufw show
added` lists them, the default policies, and the port this SSH session came
in on), planned by :func:`adapto_ops.firewall.plan.plan_firewall`, and, for
`apply`, changed one ufw command at a time, then read again to prove it now
matches. A refused plan (it would lock adapto out) changes nothing.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any

from adapto_ops.errors import EXIT_FAILED, EXIT_OK, AdaptoError, OperationFailed
from adapto_ops.events import Event, Reporter, Step
from adapto_ops.firewall.plan import FirewallPlan, plan_firewall, plan_json
from adapto_ops.remote import Transport
from adapto_ops.render.configs import Target
from adapto_ops.selection import Selection, select

ACTIONS = ("plan", "apply", "status")


class FirewallRefused(AdaptoError):
    """A plan that would lock adapto out, or cannot be made; nothing was changed."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class HostFirewall:
    """One host's outcome: its plan, what was run, and the plan read after applying."""

    host: str
    plan: FirewallPlan | None = None
    applied: list[str] | None = None
    after: FirewallPlan | None = None
    error: str | None = None
    seconds: float = 0.0


def read_plan(transport: Transport, target: Target) -> FirewallPlan:
    """Read the host's ufw and plan against the inventory (read-only)."""
    from adapto_ops.facts import read_firewall

    ufw, ssh_port = read_firewall(transport, target)
    return plan_firewall(target.env, target.host, ufw, ssh_port)


def apply_plan(transport: Transport, target: Target, reporter: Reporter, *,
               dry_run: bool = False, plan: FirewallPlan | None = None) -> HostFirewall:
    """Read, plan and apply the difference on one host; raises FirewallRefused on a refusal.

    Used by `adapto firewall apply` and by `deploy` (firewall.apply_on_deploy).
    Commands run one by one in the plan's order (SSH allow first, enable last),
    so a failure part-way leaves the SSH port open. A dry run records them.
    ``plan``: one just read on this transport (else it is read here).
    """
    from adapto_ops.commands.firewall import as_root

    host = target.host.name
    started = time.perf_counter()
    outcome = HostFirewall(host)
    with Step(reporter, host, "firewall", "read ufw and plan") as step:
        plan = outcome.plan = plan or read_plan(transport, target)
        if plan.refusal:
            raise FirewallRefused(plan.refusal, plan.refusal_exit)
        step.done_message = (f"in sync ({len(plan.rules)} rules)" if plan.in_sync
                             else f"{len(plan.changes)} change(s)")
    for conflict in plan.conflicts:
        reporter.emit(Event("warn", "firewall", conflict, host))
    for rule in plan.foreign:
        reporter.emit(Event("info", "firewall", f"kept (not adapto's): {rule.describe()}", host))
    outcome.applied = []
    for command in plan.changes:
        with Step(reporter, host, "ufw (dry run)" if dry_run else "ufw", command):
            transport.run(as_root(target.host.user, command), what=command, timeout=120)
            outcome.applied.append(command)
    if plan.changes and not dry_run:
        with Step(reporter, host, "verify", "read ufw again") as step:
            after = outcome.after = read_plan(transport, target)
            if after.changes or after.refusal:
                step.failed = True
                outcome.error = ("ufw still differs after apply: "
                                 + "; ".join(after.changes or [after.refusal or ""]))
            else:
                step.done_message = "in sync"
    if plan.conflicts and outcome.error is None:
        outcome.error = plan.conflicts[0]
    outcome.seconds = time.perf_counter() - started
    return outcome


def _collect(selection: Selection, fn: Any) -> list[HostFirewall]:
    """``fn(transport, target)`` on every host at once; an unreachable host is an outcome."""
    from adapto_ops.deploy.session import open_transport, parallel

    def one(target: Target) -> HostFirewall:
        transport = open_transport(selection, target)
        try:
            return fn(transport, target)
        finally:
            transport.close()

    outcomes = []
    for target, result in zip(selection.targets, parallel(selection.targets, one),
                              strict=True):
        if isinstance(result, FirewallRefused):
            raise result
        if isinstance(result, BaseException):
            if not isinstance(result, AdaptoError):
                raise result
            outcomes.append(HostFirewall(target.host.name, error=result.message))
        else:
            outcomes.append(result)
    return outcomes


def _read(transport: Transport, target: Target) -> HostFirewall:
    started = time.perf_counter()
    plan = read_plan(transport, target)
    return HostFirewall(target.host.name, plan=plan, seconds=time.perf_counter() - started)


def run_firewall(*, action: str, inventory: str | None, env_name: str,
                 hosts: list[str] | None, dry_run: bool, yes: bool, as_json: bool) -> int:
    """plan: the commands apply would run; status: ufw's rules and in sync or not; apply."""
    if action not in ACTIONS:
        raise AdaptoError(f"firewall {action!r}: expected one of {', '.join(ACTIONS)}")
    selection = select(inventory, env_name, hosts)
    if action == "apply":
        return _apply(selection, dry_run=dry_run, yes=yes, as_json=as_json)
    outcomes = _collect(selection, _read)
    if as_json:
        print(json.dumps({"env": env_name, "hosts": [_outcome_json(o) for o in outcomes]},
                         indent=2))
    else:
        from adapto_ops.procedures.firewall_view import print_outcomes

        print_outcomes(action, env_name, outcomes)
    failed = [o for o in outcomes if o.error]
    for o in failed:
        print(f"error: {o.host}: {o.error}", file=sys.stderr)
    refused = [o.plan for o in outcomes if o.plan and o.plan.refusal]
    if action == "plan" and refused:
        print(f"error: {refused[0].refusal}", file=sys.stderr)
        return refused[0].refusal_exit
    return EXIT_FAILED if failed else EXIT_OK


def _apply(selection: Selection, *, dry_run: bool, yes: bool, as_json: bool) -> int:
    """Plan every host first; any refusal stops all of them before one command runs."""
    from adapto_ops.deploy.session import open_transport, parallel
    from adapto_ops.procedures.deploy import confirm, make_reporter
    from adapto_ops.remote import RecordingTransport

    if not selection.env.firewall.manage:
        raise FirewallRefused(f"environment {selection.env_name!r}: firewall.manage is false: "
                              "adapto leaves its firewall alone", 2)
    targets = selection.targets
    opened = parallel(targets, lambda t: open_transport(selection, t))
    transports: list[Transport] = [t for t in opened if not isinstance(t, BaseException)]
    try:
        errors = [t for t in opened if isinstance(t, BaseException)]
        if errors:
            raise errors[0]
        if dry_run:
            transports = [RecordingTransport(t) for t in transports]
        pairs = list(zip(transports, targets, strict=True))
        plans = parallel(pairs, lambda p: read_plan(*p))
        for plan in plans:
            if isinstance(plan, BaseException):
                raise plan
            if plan.refusal:
                raise FirewallRefused(plan.refusal, plan.refusal_exit)
        if not dry_run and any(not p.in_sync for p in plans):  # type: ignore[union-attr]
            confirm(selection, "apply the firewall plan", yes)
        reporter = make_reporter(as_json)
        try:
            results = parallel(list(range(len(pairs))), lambda i: apply_plan(
                pairs[i][0], pairs[i][1], reporter, dry_run=dry_run, plan=plans[i]))
        finally:
            reporter.close()
    finally:
        for transport in transports:
            transport.close()
    outcomes = []
    for target, result in zip(targets, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, AdaptoError):
            raise result  # a bug: keep its traceback
        outcomes.append(result if isinstance(result, HostFirewall) else HostFirewall(
            target.host.name, error=getattr(result, "message", None) or str(result)))
    recorded = [{"host": c.host, "command": c.command}
                for recorder in transports for c in getattr(recorder, "recorded", [])]
    if dry_run and not as_json:
        for command in recorded:
            print(f"[dry-run] {command['host']}: {command['command']}")
    failed = [o for o in outcomes if o.error]
    if as_json:
        print(json.dumps({"event": "result", "step": "firewall apply", "ok": not failed,
                          "dry_run": dry_run, "hosts": [_outcome_json(o) for o in outcomes],
                          **({"recorded": recorded} if dry_run else {})}))
    for o in failed:
        print(f"error: {o.host}: {o.error}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _outcome_json(o: HostFirewall) -> dict[str, Any]:
    data: dict[str, Any] = {"host": o.host, "seconds": round(o.seconds, 3), "error": o.error}
    if o.plan is not None:
        data["plan"] = plan_json(o.plan)
    if o.applied is not None:
        data["applied"] = o.applied
    if o.after is not None:
        data["in_sync_after"] = o.after.in_sync
    return data


def deploy_step(transport: Transport, target: Target, reporter: Reporter, *,
                dry_run: bool) -> None:
    """deploy's firewall step (firewall.apply_on_deploy and manage): apply or fail."""
    outcome = apply_plan(transport, target, reporter, dry_run=dry_run)
    if outcome.error:
        raise OperationFailed(f"{target.host.name}: firewall: {outcome.error}")
