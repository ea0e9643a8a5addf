"""`adapto recover backend` on one host: the runbook's backend recovery, step by step.

1. PM2 status and a probe of every instance (one facts read, one probe).
2. The PM2 daemon is gone: start the instances from the current release's
   ecosystem file (the first `pm2 start` launches the daemon), then `pm2 save`.
   Otherwise: replace only the failing instances, one at a time, each healthy
   on its own port before the next, so the healthy ones keep serving.
3. Another program holds an instance's port: name it (pid, command), leave it.
4. Check again; for an instance that still fails, its last 50 log lines.

Nothing is done when every instance is online and answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapto_ops.commands import pm2 as pm2_cmd
from adapto_ops.commands.probe import http_probe, parse_probe
from adapto_ops.deploy.host import HostDeployer
from adapto_ops.deploy.restart import health_urls
from adapto_ops.deploy.state import ECOSYSTEM, HealthFailed
from adapto_ops.events import Event
from adapto_ops.facts import HostFacts, PortHolder, gather
from adapto_ops.recover.report import HostRecovery, mask_secrets
from adapto_ops.render.configs import instance_name

FIRST_LOOK_S = 3.0  # an instance PM2 is restarting by itself gets this long to answer
LOG_LINES = 50
NOT_PROBED = "not checked: no instance is online"


@dataclass(frozen=True)
class InstanceState:
    """One backend instance as PM2 and its own health URL see it."""

    name: str
    port: int
    pm2_status: str | None  # None: PM2 does not know it (or its daemon is gone)
    restarts: int
    answers: bool
    error: str
    foreign: PortHolder | None
    crash_looping: bool = False

    @property
    def ok(self) -> bool:
        return self.pm2_status == "online" and self.answers and not self.crash_looping

    def problem(self) -> str:
        """Why it fails, in a few words."""
        if self.foreign is not None:
            return (f"port {self.port} is held by pid {self.foreign.pid} "
                    f"({self.foreign.command or '?'}), not by PM2")
        if self.pm2_status is None:
            return "not in PM2"
        if self.crash_looping:
            return f"crash loop ({self.restarts} restarts, PM2 status {self.pm2_status})"
        if self.pm2_status != "online":
            return f"PM2 status {self.pm2_status}"
        return f"does not answer on :{self.port}: {self.error}"


@dataclass(frozen=True)
class BackendState:
    facts: HostFacts
    instances: list[InstanceState]
    api_via_nginx: str | None  # None: answers; else the error

    @property
    def instances_ok(self) -> bool:
        return all(i.ok for i in self.instances)

    def summary(self) -> str:
        daemon = "PM2 daemon up" if self.facts.pm2_daemon else "PM2 daemon gone"
        parts = [f"{i.name} {i.pm2_status or 'absent'}"
                 + (f" ({i.restarts} restarts)" if i.restarts else "")
                 + (" not answering" if i.pm2_status == "online" and not i.answers else "")
                 for i in self.instances]
        return f"{daemon}; " + ", ".join(parts)


def read_state(d: HostDeployer, probe_timeout_s: float) -> BackendState:
    """Facts, then one probe of the online instances and of /api/health through nginx.

    An instance PM2 does not report online is failing whatever its port says,
    so it is not probed (the probe would only wait out its deadline).
    """
    backend = d.env.backend
    facts = gather(d.t, d.target)
    urls = health_urls(d.target)
    by_port = dict(zip(backend.ports, urls[2:], strict=True))
    processes = {port: facts.instance(backend.name, port) for port in backend.ports}
    online = [port for port, p in processes.items() if p is not None and p.online]
    # Through nginx only when an instance is up to PM2: with none, it cannot answer
    # and would only wait out the deadline.
    keys: list[int | str] = [*online, *(["api"] if online else [])]
    wanted = [by_port[k] if isinstance(k, int) else urls[0] for k in keys]
    result = d.t.run(http_probe(wanted, probe_timeout_s), check=False, mutates=False,
                     what="probe the instances", timeout=probe_timeout_s + 30)
    probes = dict(zip(keys, parse_probe(result.stdout, wanted), strict=True))
    instances = []
    for port, process in processes.items():
        probe = probes.get(port)
        instances.append(InstanceState(
            instance_name(backend.name, port), port,
            process.status if process else None, process.restarts if process else 0,
            probe is not None and probe.ok, (probe.error or "") if probe else "not probed",
            facts.foreign_holder(port), bool(process and process.crash_looping)))
    api = probes.get("api")
    api_error = NOT_PROBED if api is None else None if api.ok else api.error or "?"
    return BackendState(facts, instances, api_error)


def recover_backend(d: HostDeployer, secret_values: list[str]) -> HostRecovery:
    """Bring every backend instance of one host back, or say what stops it."""
    out = HostRecovery(d.name)
    with d.step("status", "PM2 and every instance") as s:
        before = read_state(d, FIRST_LOOK_S)
        s.done_message = before.summary()
        s.failed = not before.instances_ok or before.api_via_nginx is not None
    if before.instances_ok:
        out.nothing_to_do = True
        out.healthy = before.api_via_nginx is None
        _describe(out, before)
        return out
    release = before.facts.backend_release
    if not release:
        out.still_failing.append("no current release on the host: run `adapto deploy all` first")
        return out
    ecosystem = f"{d.layout.release(release)}/{ECOSYSTEM}"
    held = [i for i in before.instances if i.foreign is not None]
    for i in held:
        d.reporter.emit(Event("fail", "port", f"{i.name}: {i.problem()}; adapto does not stop "
                              "other programs: stop it, then run `adapto recover backend` again",
                              d.name, {"port": i.port, "pid": i.foreign.pid if i.foreign else None,
                                       "command": i.foreign.command if i.foreign else ""}))
    failing = [i for i in before.instances if not i.ok and i.foreign is None]
    daemon_started = not before.facts.pm2_daemon and bool(failing)
    if daemon_started:
        _start_from_release(d, out, ecosystem, [i.name for i in failing])
    else:
        for i in failing:
            try:
                d.rolling_restart(release, names=[i.name])
                out.actions.append(f"restart {i.name} ({i.problem()})")
            except HealthFailed:
                out.actions.append(f"restart {i.name} ({i.problem()}): still not healthy")
    if d.dry_run:
        _describe(out, before)
        return out
    if out.actions and not before.facts.pm2_saved:
        # Without a saved list a reboot (`pm2 resurrect`) brings nothing back. A saved
        # one already names these apps from this release (the deploy saved it).
        d.t.run(pm2_cmd.save(), check=False, what="pm2 save")
    # Restarted instances were each seen healthy already; ones PM2 launched along
    # with its daemon are still starting and get the deploy's start timeout.
    wait_s = d.env.health.instance_start_timeout_s if daemon_started else FIRST_LOOK_S
    with d.step("check", "PM2 and every instance again") as s:
        after = read_state(d, wait_s)
        s.done_message = after.summary()
        s.failed = not after.instances_ok or after.api_via_nginx is not None
    for i in after.instances:
        if not i.ok and i.foreign is None:
            _show_logs(d, i.name, secret_values)
    out.healthy = after.instances_ok and after.api_via_nginx is None
    _describe(out, after)
    return out


def _start_from_release(d: HostDeployer, out: HostRecovery, ecosystem: str,
                        names: list[str]) -> None:
    """The daemon is gone (a reboot without `pm2 startup`, or killed): start the instances."""
    with d.step("start", f"PM2 daemon gone: {', '.join(names)} from {ecosystem}") as s:
        d.t.run(pm2_cmd.start_only(ecosystem, names), what="start the instances",
                timeout=120)
        s.done_message = f"started {', '.join(names)} (PM2 daemon launched)"
    out.actions.append(f"start {', '.join(names)} from {ecosystem} (the PM2 daemon was gone)")


def _show_logs(d: HostDeployer, name: str, secret_values: list[str]) -> None:
    result = d.t.run(pm2_cmd.log_tail(d.layout.log_dir, name, LOG_LINES), check=False,
                     mutates=False, what=f"logs of {name}")
    text = mask_secrets(result.stdout.rstrip(), secret_values) or "(no log files)"
    d.reporter.emit(Event("info", "logs", f"last {LOG_LINES} log lines of {name}:\n{text}",
                          d.name, {"instance": name, "lines": text.splitlines()}))


def _describe(out: HostRecovery, state: BackendState) -> None:
    """What is true now, and what still fails (one line each)."""
    for i in state.instances:
        if i.ok:
            out.now.append(f"{i.name} online, answers on :{i.port}")
        else:
            out.now.append(f"{i.name}: {i.problem()}")
            out.still_failing.append(f"{i.name}: {i.problem()}")
    if state.api_via_nginx is None:
        out.now.append("/api/health through nginx answers")
    elif state.api_via_nginx == NOT_PROBED:  # the instances' own lines say what fails
        out.now.append(f"/api/health through nginx {NOT_PROBED}")
    else:
        out.now.append(f"/api/health through nginx fails: {state.api_via_nginx}")
        # With every instance well, what fails between them and the client is nginx.
        hint = " (try `adapto recover nginx`)" if state.instances_ok else ""
        out.still_failing.append(f"/api/health through nginx: {state.api_via_nginx}{hint}")
