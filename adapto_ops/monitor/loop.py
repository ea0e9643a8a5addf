"""The monitor's loop: check, track, alert, recover, record, on every round.

What checks the hosts, what recovers them and where a deploy is read from
are passed in, so the whole cycle runs in unit tests with fake results and
in the CLI with the real health checks and `adapto recover`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapto_ops.errors import InventoryError
from adapto_ops.health.model import CheckResult
from adapto_ops.monitor.alerts import Notice, Outbox, alert_notice, deploy_note, resolved_notice
from adapto_ops.monitor.metrics import Metrics
from adapto_ops.monitor.state import Group, Incident, Tracker, Transition, recover_target
from adapto_ops.monitor.stats import Stats
from adapto_ops.monitor.store import ResultsFile, round_record

CheckFn = Callable[[], list[CheckResult]]
RecoverFn = Callable[[str, str], bool]  # (host, "backend" | "nginx") -> ended healthy
DeployFn = Callable[[str], "dict[str, Any] | None"]  # host -> its last history line


@dataclass(frozen=True)
class MonitorConfig:
    env: str
    failure_threshold: int = 3
    success_threshold: int = 2
    group: Group = "host"
    deploy_window_s: float = 600
    auto_recover: bool = False


@dataclass
class RoundOutcome:
    number: int
    started: float
    took_ms: float
    results: list[CheckResult]
    events: list[dict[str, Any]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.status != "fail" for r in self.results)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Monitor:
    """One environment's monitor; :meth:`round` is one cycle, :meth:`run` repeats it."""

    def __init__(self, config: MonitorConfig, check: CheckFn, *,
                 recover: RecoverFn | None = None, last_deploy: DeployFn | None = None,
                 outbox: Outbox | None = None, store: ResultsFile | None = None,
                 metrics: Metrics | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.check, self.recover, self.last_deploy = check, recover, last_deploy
        self.outbox = outbox or Outbox(None)
        self.store, self.metrics, self.clock = store, metrics, clock
        self.tracker = Tracker(config.failure_threshold, config.success_threshold, config.group)
        self.stats = Stats()
        self.rounds = 0

    def _checks(self) -> list[CheckResult]:
        try:
            return self.check()
        except InventoryError:
            raise  # bad input (exit 2), not a sick host
        except Exception as exc:  # a round that cannot check is a failed round, not a crash
            reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            return [CheckResult("*", "monitor", "checks", "monitor could not run the checks",
                                "fail", output=reason[:300], kind="network")]

    def _recover_targets(self, incident: Incident) -> list[str]:
        if not (self.config.auto_recover and self.recover):
            return []
        wanted = {recover_target(r) for r in self.tracker.failing_now(incident)}
        return sorted(w for w in wanted if w and w not in incident.recover_tried)

    def _deploy_note(self, incident: Incident) -> str | None:
        if self.last_deploy is None:
            return None
        try:
            deploy = self.last_deploy(incident.host)
        except Exception:  # the alert matters more than its deploy note
            return None
        return deploy_note(deploy, incident.first_failure_at, self.config.deploy_window_s,
                           self.config.env)

    def _notice(self, transition: Transition) -> Notice:
        incident = transition.incident
        if transition.kind == "resolved":
            return resolved_notice(self.config.env, incident)
        return alert_notice(self.config.env, incident, deploy=self._deploy_note(incident),
                            recovering=self._recover_targets(incident))

    def round(self) -> RoundOutcome:
        """Check every host once; alert, recover and record what that changed."""
        started = self.clock()
        t0 = time.perf_counter()
        results = self._checks()
        self.rounds += 1
        outcome = RoundOutcome(self.rounds, started, 0.0, results)
        self.stats.add(results)
        for transition in self.tracker.observe(results, started):
            notice = self._notice(transition)
            outcome.notices.append(notice)
            outcome.events.append({"event": notice.kind, "host": notice.host,
                                   "text": notice.text})
            if self.metrics:
                self.metrics.count_alert(notice.kind)
        # Alerts go out before any recovery: a person should know while it runs.
        for error in self.outbox.deliver(outcome.notices):
            outcome.events.append({"event": "alert-not-delivered", "error": error,
                                   "pending": len(self.outbox.pending)})
        for incident in list(self.tracker.open.values()):
            for what in self._recover_targets(incident):
                outcome.events.append(self._run_recover(incident, what))
        outcome.took_ms = (time.perf_counter() - t0) * 1000
        if self.metrics:
            self.metrics.update(results, self.stats, len(self.tracker.open))
        if self.store:
            self.store.append(round_record(outcome.number, _iso(started), outcome.took_ms,
                                           results, outcome.events))
        return outcome

    def _run_recover(self, incident: Incident, what: str) -> dict[str, Any]:
        assert self.recover is not None
        incident.recover_tried[what] = False  # tried once per incident, whatever happens
        t0 = time.perf_counter()
        try:
            healthy = bool(self.recover(incident.host, what))
            error = None
        except Exception as exc:
            healthy, error = False, getattr(exc, "message", None) or str(exc)
        incident.recover_tried[what] = healthy
        event = {"event": "recover", "host": incident.host, "what": what, "healthy": healthy,
                 "took_s": round(time.perf_counter() - t0, 2)}
        if error:
            event["error"] = error[:300]
        return event

    def run(self, interval_s: float, stop: threading.Event,
            on_round: Callable[[RoundOutcome], None], max_rounds: int | None = None) -> None:
        """A round every ``interval_s`` (start to start) until ``stop`` is set."""
        next_at = time.monotonic()
        while not stop.is_set():
            on_round(self.round())
            if max_rounds is not None and self.rounds >= max_rounds:
                return
            next_at += interval_s
            wait = next_at - time.monotonic()
            if wait < 0:  # a round longer than the interval: start the next one now
                next_at, wait = time.monotonic(), 0.0
            stop.wait(wait)
