"""Replacing and checking a host's backend instances, and keeping them across a reboot.

The part of :class:`~adapto_ops.deploy.host.HostDeployer` shared by deploy,
rollback and recover: the rolling restart (one instance at a time, each
healthy before the next), starting instances that are not running, the health
gate, and PM2's saved list and boot unit.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from adapto_ops.commands import pm2 as pm2_cmd
from adapto_ops.commands.probe import (
    ProbeResult,
    curl_once,
    http_probe,
    parse_curl,
    parse_probe,
)
from adapto_ops.deploy.state import ECOSYSTEM, HealthFailed
from adapto_ops.events import Event, Reporter, Step
from adapto_ops.facts import gather
from adapto_ops.health.classify import probe_reason
from adapto_ops.render.configs import UPSTREAM_FAIL_TIMEOUT_S, Target, instance_name

if TYPE_CHECKING:  # annotations only
    from adapto_ops.inventory.model import Environment
    from adapto_ops.layout import ReleaseLayout
    from adapto_ops.remote import Transport


class RestartMixin:
    """Restart, start and health-check the backend instances of one host.

    Mixed into :class:`~adapto_ops.deploy.host.HostDeployer`, which sets these attributes.
    """

    t: Transport
    target: Target
    env: Environment
    layout: ReleaseLayout
    reporter: Reporter
    dry_run: bool
    probe_token: str | None
    name: str
    replaced: list[str]
    started: list[str]

    def step(self, step: str, message: str = "") -> Step:
        """A step of this host for ``with``: start, then ok (or fail if the block raises)."""
        return Step(self.reporter, self.name, step, message)

    def _token_stdin(self) -> bytes:
        return (self.probe_token or "").encode()

    # --- 3. activate: the backend instances --------------------------------------------

    def rolling_restart(self, backend_release: str, names: list[str] | None = None) -> list[str]:
        """Replace instances one at a time; returns those replaced. Raises HealthFailed.

        Each instance is deleted and started afresh from the release's own
        ecosystem file: PM2 keeps the cwd it resolved at first start across
        restarts and reloads (PM2 #2963, #2510), so a restart would keep
        running the old release.
        """
        backend = self.env.backend
        ecosystem = f"{self.layout.release(backend_release)}/{ECOSYSTEM}"
        timeout = self.env.health.instance_start_timeout_s
        done = self.replaced = []
        ports = [p for p in backend.ports
                 if names is None or instance_name(backend.name, p) in names]
        strays = self._strays() if names is None else {}
        # Ports a stray still holds go last, so the others serve while it is replaced.
        held = {port or backend.base_port for port in strays.values()}
        ports.sort(key=lambda p: p in held)
        if backend.instances == 1 and not self.dry_run:
            self.reporter.emit(Event("warn", "restart", "one backend instance: requests fail "
                                     "while it restarts; set backend.instances to 2 or more",
                                     self.name))
        elif strays and all(p in held for p in ports):
            self.reporter.emit(Event("warn", "restart", f"{', '.join(strays)} hold(s) every "
                                     "port: a short outage while they are replaced", self.name))
        for index, port in enumerate(ports):
            name = instance_name(backend.name, port)
            url = f"http://{_url_host(backend.bind)}:{port}{backend.health_path}"
            with self.step("restart", f"{name} ({index + 1}/{len(ports)})") as s:
                done.append(name)
                script = f"{pm2_cmd.delete(name)}\n{pm2_cmd.start(ecosystem, name)}"
                if strays and port in held:
                    # The runbook's `pm2 start npm --name ...` (or a dropped instance)
                    # goes only now, when the new instances on free ports are serving.
                    script = "\n".join(pm2_cmd.delete(n) for n in strays) + "\n" + script
                    strays = {}
                if self.dry_run:
                    self.t.run(script, what=f"restart {name}")
                    continue
                # stdin (the probe token) is the probe's alone, not PM2's.
                probe_cmd = http_probe([(url, "")], timeout, with_token=True)
                result = self.t.run(f"{{ {script}\n}} < /dev/null\n{probe_cmd}", check=False,
                                    stdin=self._token_stdin(), what=f"restart {name}",
                                    timeout=timeout + 60)
                probe = parse_probe(result.stdout, [(url, "")])[0]
                if not probe.ok:
                    why = (probe_reason(probe.status, probe.error) if probe.error
                           else result.last_error_line())
                    raise HealthFailed(f"{self.name}: {name} not healthy on {url} after "
                                       f"{timeout:.0f}s: {why}")
                s.done_message = f"{name} healthy ({probe.ms:.0f} ms)"
            if index < len(ports) - 1 and not self.dry_run:
                # nginx may still count the instance as failed: fail_timeout, measured
                # on nginx's one-second clock, so up to one second more.
                time.sleep(UPSTREAM_FAIL_TIMEOUT_S + 1)
        if strays:  # on ports nginx no longer sends to: remove once the new ones serve
            self.t.run("\n".join(pm2_cmd.delete(n) for n in strays), what="remove old apps")
        return done

    def start_missing(self, backend_release: str) -> list[str]:
        """Start the instances PM2 does not run (a reboot without PM2's boot unit, a kill).

        A deploy that changes nothing in the backend leaves running instances
        alone, but must not leave dead ones dead: they are started one at a time
        from ``backend_release``, each healthy before the next. Returns their names.
        """
        self.started = []
        if self.dry_run:
            return []
        backend = self.env.backend
        urls = [(f"http://{_url_host(backend.bind)}:{p}{backend.health_path}", "")
                for p in backend.ports]
        quick = self.t.run(http_probe(urls, 0), check=False, mutates=False,
                           what="are the instances answering", timeout=30)
        if all(p.ok for p in parse_probe(quick.stdout, urls)):
            return []  # one try each, ~60 ms: the full facts read costs ten times that
        facts = gather(self.t, self.target)
        if facts.pm2_daemon and facts.pm2 is None:
            # The daemon runs but its list is unreadable: do not start a second copy.
            self.reporter.emit(Event("warn", "start", f"PM2 list unreadable ({facts.pm2_error})",
                                     self.name))
            return []
        missing = facts.instances_not_online(backend.name, backend.ports)
        self.started = missing  # set first: a failed start is still worth a history line
        if missing:
            self.reporter.emit(Event("warn", "start", f"not running: {', '.join(missing)}; "
                                     f"starting from release {backend_release}", self.name))
            self.rolling_restart(backend_release, names=missing)
        return missing

    def _strays(self) -> dict[str, int | None]:
        """PM2 apps of this backend outside the new instance set, with the PORT they use.

        The runbook's own `pm2 start npm --name ai-platform-backend -- start` is
        one (on a server adapto takes over); instances dropped when `instances`
        shrinks are others. They are removed during the rolling restart.
        """
        backend = self.env.backend
        result = self.t.run(pm2_cmd.jlist(), check=False, mutates=False, what="pm2 jlist")
        lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
        try:
            apps = json.loads(lines[-1]) if lines else []
        except json.JSONDecodeError:
            return {}
        wanted = {instance_name(backend.name, p) for p in backend.ports}
        strays: dict[str, int | None] = {}
        for app in apps:
            name, env = app.get("name"), app.get("pm2_env") or {}
            if name in wanted or not (name == backend.name or env.get("namespace") == backend.name):
                continue
            port = str(env.get("PORT") or (env.get("env") or {}).get("PORT") or "")
            strays[str(name)] = int(port) if port.isdigit() else None
        return strays

    # --- 4. gate ------------------------------------------------------------------------

    def gate(self) -> list[str]:
        """Failures of the health checks through nginx and on each instance (empty: healthy)."""
        if self.dry_run:
            return []
        with self.step("health", "through nginx and on every instance") as s:
            failures = self._health(s, 5)
        return failures

    def _health(self, s: Step, timeout_s: float) -> list[str]:
        urls = health_urls(self.target)
        result = self.t.run(http_probe(urls, timeout_s, with_token=True), check=False,
                            mutates=False, stdin=self._token_stdin(),
                            what="health checks", timeout=60)
        probes: list[ProbeResult] = parse_probe(result.stdout, urls)
        # A status line and a short reason: never nginx's HTML error page.
        failures = [f"{p.url}: {probe_reason(p.status, p.error)}" for p in probes if not p.ok]
        s.done_message = (f"{len(urls) - len(failures)}/{len(urls)} checks passed"
                          + (": " + "; ".join(failures) if failures else ""))
        s.data = {"failures": failures, "ms": {p.url: p.ms for p in probes}}
        s.failed = bool(failures)
        return failures

    def serve_gate(self, backend_release: str) -> list[str]:
        """The gate for a host whose instances were not replaced: dead ones started first.

        Checked first, in one try (one node run): when every check passes, the
        instances are running and this is the gate. Only a failure pays for
        :meth:`start_missing` (facts, starts) and the full gate with retries.
        """
        if self.dry_run:
            return []
        started = time.perf_counter()
        urls = health_urls(self.target)
        result = self.t.run(curl_once(urls, with_token=True), check=False, mutates=False,
                            stdin=self._token_stdin(), what="health checks", timeout=30)
        probes = parse_curl(result.stdout, urls)
        if probes is None:  # no curl on the host: node, one try
            quick = Step(_Quiet(), self.name, "health")
            passed = not self._health(quick, 0)
            message, data = quick.done_message or "", quick.data
        else:
            passed = all(p.ok for p in probes)
            message = f"{len(urls)}/{len(urls)} checks passed"
            data = {"failures": [], "ms": {p.url: p.ms for p in probes}}
        if passed:
            self.reporter.emit(Event("ok", "health", message, self.name, data,
                                     time.perf_counter() - started))
            return []
        self.start_missing(backend_release)
        return self.gate()

    # --- after a restart ----------------------------------------------------------------

    def persistence(self, restarted: bool) -> list[str]:
        """Commands so that a reboot brings back what runs now (`pm2 save`, `pm2 startup`).

        A production host gets PM2's systemd boot unit (once) and a saved list after
        every deploy; a sandbox only the saved list when instances changed: its boot is
        `adapto sandbox up`, and `pm2 startup` would install a unit on this machine.
        """
        production = self.env.sandbox is None
        parts = [pm2_cmd.save()] if restarted or production else []
        if production:
            parts.append(pm2_cmd.ensure_startup(self.target.host.user))
        return parts

    def warn_startup_failed(self, stdout: str) -> None:
        """A warning when the output of :meth:`persistence`'s commands says `pm2 startup` failed."""
        if pm2_cmd.STARTUP_FAILED in stdout:
            self.reporter.emit(Event("warn", "pm2 startup", "could not install PM2's boot unit; "
                                     f"run `pm2 startup systemd -u {self.target.host.user}` on "
                                     "the host as root, or processes stay down after a reboot",
                                     self.name))


class _Quiet:
    """A reporter that drops events: a first, one-try check whose failure is not final."""

    def emit(self, event: Event) -> None:
        del event

    def close(self) -> None:
        pass


def probe_address(target: Target) -> str:
    """Where nginx can be reached from the host itself."""
    first = target.env.nginx.listen[0]
    return "127.0.0.1" if first in {"0.0.0.0", "*", "[::]"} else first.strip("[]")


def health_urls(target: Target) -> list[tuple[str, str]]:
    """(url, TLS server name) of the runbook's checks, as seen from the host itself:
    /api/health and / through nginx over TLS, then /api/health on every instance."""
    env = target.env
    origin = f"https://{probe_address(target)}:{env.nginx.https_port}"
    urls = [(f"{origin}{env.backend.health_path}", env.nginx.canonical_name),
            (f"{origin}/", env.nginx.canonical_name)]
    urls += [(f"http://{_url_host(env.backend.bind)}:{p}{env.backend.health_path}", "")
             for p in env.backend.ports]
    return urls


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address and not address.startswith("[") else address
