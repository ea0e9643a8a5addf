"""The on-host probes of `adapto health` as :class:`CheckResult`s, for the monitor.

The monitor checks every few seconds, so the SSH connection to each host is
kept open between rounds (a dead one is reopened on the next round) and each
URL is probed once per round instead of retried until a deadline: the
failure threshold, not the probe, decides when a failure is real. Used when
this adapto has no full health run (`adapto_ops.health.run.run_checks`).
"""

from __future__ import annotations

import threading
from typing import Any

from adapto_ops.errors import AdaptoError
from adapto_ops.health.model import CheckResult
from adapto_ops.selection import Selection

# One attempt per URL; the probe's own per-request timeout is 5 s.
SINGLE_ATTEMPT = 0.0


def classify(error: str, *, through_nginx: bool) -> tuple[str, str]:
    """(kind, which recover) of a failed probe, from its error line."""
    if error.startswith("HTTP 429"):
        return "rate-limited", "nginx"
    if error.startswith("HTTP 404"):
        return "404", "nginx"
    if error.startswith("HTTP 5"):
        # Through nginx, a 502/503/504 means nginx is up and the backend behind it is not.
        return "500", "backend"
    if error.startswith("HTTP "):
        return "500" if not through_nginx else "network", "backend"
    if through_nginx:
        return "network", "nginx"  # nginx itself does not answer
    return "process", "backend"


def to_results(env_name: str, host: str, env: Any, probes: list[Any]) -> list[CheckResult]:
    """The probes of one host (API and page through nginx, then every instance) as results."""
    names = [("api", "api via nginx", env.health.api_budget_ms),
             ("page", "page via nginx", env.health.page_budget_ms)]
    names += [(f"instance:{port}", f"instance :{port}", env.health.api_budget_ms)
              for port in env.backend.ports]
    results = []
    for (component, name, budget), probe in zip(names, probes, strict=True):
        through_nginx = not component.startswith("instance")
        common = {"observed_value": round(probe.ms, 1) if probe.ms is not None else None,
                  "observed_unit": "ms", "duration_ms": probe.ms}
        if not probe.ok:
            error = " ".join((probe.error or "no answer").split())[:160]
            kind, what = classify(error, through_nginx=through_nginx)
            results.append(CheckResult(host, component, "responseTime", name, "fail",
                                       output=error, kind=kind,
                                       next_command=f"adapto recover {what} -e {env_name}",
                                       **common))
        elif probe.ms is not None and probe.ms > budget:
            results.append(CheckResult(host, component, "responseTime", name, "warn",
                                       output=f"{probe.ms:.0f} ms > budget {budget} ms",
                                       kind="slow", **common))
        else:
            results.append(CheckResult(host, component, "responseTime", name, "pass", **common))
    return results


class HostProbes:
    """Callable: one round of probes on every selected host, over connections kept open."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self._deployers: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _deployer(self, target: Any) -> Any:
        from adapto_ops.deploy.host import HostDeployer
        from adapto_ops.deploy.run import open_transport
        from adapto_ops.events import ListReporter

        with self._lock:
            deployer = self._deployers.get(target.host.name)
        if deployer is None:
            deployer = HostDeployer(open_transport(self.selection, target), target,
                                    ListReporter())
            with self._lock:
                self._deployers[target.host.name] = deployer
        return deployer

    def _drop(self, host: str) -> None:
        with self._lock:
            deployer = self._deployers.pop(host, None)
        if deployer is not None:
            try:
                deployer.t.close()
            except Exception:  # already broken: closing is best effort
                pass

    def _host(self, target: Any) -> list[CheckResult]:
        from adapto_ops.commands.probe import http_probe, parse_probe
        from adapto_ops.deploy.host import health_urls

        host = target.host.name
        urls = health_urls(target)
        try:
            deployer = self._deployer(target)
            result = deployer.t.run(http_probe(urls, SINGLE_ATTEMPT), check=False,
                                    mutates=False, what="health probes", timeout=30)
        except AdaptoError as exc:
            self._drop(host)
            return [CheckResult(host, "ssh", "connect", "SSH to the host", "fail",
                                output=exc.message[:200], kind="network")]
        return to_results(self.selection.env_name, host, target.env,
                          parse_probe(result.stdout, urls))

    def __call__(self) -> list[CheckResult]:
        from adapto_ops.deploy.run import parallel

        out: list[CheckResult] = []
        for found in parallel(self.selection.targets, self._host):
            if isinstance(found, BaseException):
                raise found
            out.extend(found)
        return out

    def last_deploy(self, host: str) -> dict[str, Any] | None:
        """The host's last history line (deploy or rollback), over the open connection.

        Only the history's last line is read, not every fact: this runs while an
        alert waits to be sent.
        """
        import json

        from adapto_ops.commands.release import read_history

        target = next(t for t in self.selection.targets if t.host.name == host)
        deployer = self._deployer(target)
        result = deployer.t.run(read_history(target.layout, 1), check=False, mutates=False,
                                what="read the deploy history", timeout=15)
        try:
            last = json.loads(result.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return None
        return last if isinstance(last, dict) else None

    def close(self) -> None:
        for host in list(self._deployers):
            self._drop(host)
