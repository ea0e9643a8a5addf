"""Every health check of the selected hosts, all at once.

Per host, one thread opens SSH and reads the facts while the on-host probes
run beside them (one round trip), and one thread per local check talks to
the site as a user would. Nothing waits for anything else, so the whole run
takes about as long as its slowest part (benchmarks/operate_health.py
measures it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from adapto_ops.errors import AdaptoError, InventoryError
from adapto_ops.health.classify import NextCommands, trim
from adapto_ops.health.local import Site, local_checks
from adapto_ops.health.model import CheckResult
from adapto_ops.health.onhost import HostChecks, instance_probe, ssh_failure
from adapto_ops.render.configs import Target, probe_token_value
from adapto_ops.selection import Selection


def _next_commands(selection: Selection, target: Target) -> NextCommands:
    env = selection.env
    return NextCommands(selection.env_name, target.host.name, many_hosts=len(env.hosts) > 1,
                        sandbox=env.sandbox is not None)


def _on_host(selection: Selection, target: Target, token: str | None) -> list[CheckResult]:
    """SSH in, read facts and probe every instance in one round trip."""
    from adapto_ops.commands import dbscript
    from adapto_ops.deploy.session import open_transport
    from adapto_ops.facts import gather

    next_commands = _next_commands(selection, target)
    started = time.perf_counter()
    try:
        transport = open_transport(selection, target)
    except AdaptoError as exc:
        return [ssh_failure(target, exc.message, next_commands,
                            round((time.perf_counter() - started) * 1000, 1))]
    try:
        connected = time.perf_counter()
        facts = gather(transport, target, probe=instance_probe(target),
                       stdin=(token or "").encode(),
                       database=dbscript.command("check", target.layout))
    except AdaptoError as exc:
        return [ssh_failure(target, exc.message, next_commands,
                            round((time.perf_counter() - started) * 1000, 1))]
    finally:
        transport.close()
    connect_ms = round((connected - started) * 1000, 1)
    # An on-host check alone would cost the connection too: that is its duration.
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    ssh = CheckResult(target.host.name, "ssh", "connect", "ssh", "pass", connect_ms, "ms",
                      f"{target.host.user}@{target.host.address}:{target.host.port}",
                      duration_ms=connect_ms)
    return [ssh, *HostChecks(target, facts, next_commands, duration_ms).all()]


def _guarded(target: Target, name: str, check: Callable[[], list[CheckResult]],
             next_commands: NextCommands) -> list[CheckResult]:
    """A check that raised (a bug, not a finding) still reports, as one failed line."""
    try:
        return check()
    except Exception as exc:  # every check must come back with a result
        return [CheckResult(target.host.name, name, "error", name, "fail",
                            output=trim(f"{type(exc).__name__}: {exc}"), kind="network",
                            next_command=next_commands.for_kind("network", name))]


def _check_ca_files(selection: Selection) -> None:
    for target in selection.targets:
        ca = target.env.health.ca_file
        if ca and not Path(ca).is_file():
            hint = (f"run `adapto sandbox up -e {selection.env_name}`"
                    if selection.env.sandbox else "fix health.ca_file")
            raise InventoryError(f"{selection.loaded.path}: health.ca_file {ca} of host "
                                 f"{target.host.name} does not exist; {hint}")


def run_checks(selection: Selection) -> list[CheckResult]:
    """Every check of every selected host, run concurrently; results grouped by host."""
    selection.require_sandbox_up()  # its CA file and hosts come with `sandbox up`
    _check_ca_files(selection)
    secret_values = selection.secrets()
    jobs: list[tuple[Target, list[Future[list[CheckResult]]]]] = []
    per_host = 1 + 5  # the SSH round trip and the local checks
    with ThreadPoolExecutor(max_workers=per_host * len(selection.targets)) as pool:
        for target in selection.targets:
            token = probe_token_value(target, secret_values)
            next_commands = _next_commands(selection, target)
            # SSH first: its connection is the slowest part, so it starts earliest.
            futures = [pool.submit(_guarded, target, "ssh",
                                   lambda t=target, k=token: _on_host(selection, t, k),
                                   next_commands)]
            site = Site.of(target, token, next_commands)
            futures += [pool.submit(_guarded, target, "local", check, next_commands)
                        for check in local_checks(site)]
            jobs.append((target, futures))
    results: list[CheckResult] = []
    for _target, futures in jobs:
        host_results = [r for f in futures for r in f.result()]
        # Local checks first (what users see), then the host's own view.
        results += [r for r in host_results if not _on_host_result(r)]
        results += [r for r in host_results if _on_host_result(r)]
    return results


def _on_host_result(result: CheckResult) -> bool:
    return result.component in ("ssh", "pm2", "nginx", "disk", "database") or \
        result.component.startswith("instance-")
