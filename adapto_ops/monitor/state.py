"""The monitor's state machine: when a failing check becomes an incident, and when it ends.

Thresholds work as in Gatus: a check is *triggered* after ``failure_threshold``
consecutive failures and *resolved* after ``success_threshold`` consecutive
passes. Triggered checks are gathered into incidents (per host by default, or
per check), and each incident gives exactly one alert when it opens and one
resolved message when its last triggered check resolves. Killing a backend
fails the API through nginx and every instance at once: that is one incident,
one message, not three.

Pure: no clock, no I/O; the caller passes ``now`` and acts on the transitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from adapto_ops.health.model import CheckResult

Group = Literal["host", "check"]


def check_id(result: CheckResult) -> str:
    """What a check is called across rounds: "<host> <component>:<measurement>"."""
    return f"{result.host} {result.key}"


@dataclass
class CheckState:
    """One check's streaks, as Gatus keeps them per endpoint."""

    failures: int = 0
    successes: int = 0
    triggered: bool = False
    streak_started: float | None = None  # when the current run of failures began
    last: CheckResult | None = None


@dataclass
class Incident:
    """Triggered checks of one group (a host, or one check), from alert to resolved."""

    group: str
    host: str
    opened_at: float
    first_failure_at: float
    failing: dict[str, CheckResult] = field(default_factory=dict)  # check id -> result
    triggered: set[str] = field(default_factory=set)  # check ids still triggered
    recover_tried: dict[str, bool] = field(default_factory=dict)  # what -> ended healthy
    resolved_at: float | None = None

    @property
    def duration_s(self) -> float | None:
        return None if self.resolved_at is None else self.resolved_at - self.first_failure_at


@dataclass(frozen=True)
class Transition:
    """An incident opened ("alert") or ended ("resolved") in this round."""

    kind: Literal["alert", "resolved"]
    incident: Incident


def is_failure(result: CheckResult) -> bool:
    """Only ``fail`` counts: a warning (a budget exceeded) is shown, not paged."""
    return result.status == "fail"


class Tracker:
    """Feeds each round's results through the thresholds; returns what changed."""

    def __init__(self, failure_threshold: int, success_threshold: int,
                 group: Group = "host") -> None:
        if failure_threshold < 1 or success_threshold < 1:
            raise ValueError("thresholds must be at least 1")
        self.failure_threshold = failure_threshold
        self.success_threshold = success_threshold
        self.group = group
        self.checks: dict[str, CheckState] = {}
        self.open: dict[str, Incident] = {}

    def group_of(self, result: CheckResult) -> str:
        return result.host if self.group == "host" else check_id(result)

    def observe(self, results: list[CheckResult], now: float) -> list[Transition]:
        """One round. Alerts come before resolutions; each incident at most once per round."""
        opened: list[Transition] = []
        resolved: list[Transition] = []
        for result in results:
            cid = check_id(result)
            state = self.checks.setdefault(cid, CheckState())
            state.last = result
            if is_failure(result):
                state.successes = 0
                if state.failures == 0:
                    state.streak_started = now
                state.failures += 1
                if not state.triggered and state.failures >= self.failure_threshold:
                    state.triggered = True
                    transition = self._trigger(result, cid, state, now)
                    if transition is not None:
                        opened.append(transition)
                elif state.triggered:
                    incident = self.open.get(self.group_of(result))
                    if incident is not None:
                        incident.failing[cid] = result
            else:
                state.failures = 0
                state.streak_started = None
                state.successes += 1
                if state.triggered and state.successes >= self.success_threshold:
                    state.triggered = False
                    transition = self._resolve(result, cid, now)
                    if transition is not None:
                        resolved.append(transition)
        # The alert names everything failing in its group this round, not only the
        # checks past the threshold: instances stopped one after the other cross it
        # in different rounds, and the person paged should see the whole picture.
        for transition in opened:
            incident = transition.incident
            for result in results:
                if is_failure(result) and self.group_of(result) == incident.group:
                    incident.failing.setdefault(check_id(result), result)
        return opened + resolved

    def _trigger(self, result: CheckResult, cid: str, state: CheckState,
                 now: float) -> Transition | None:
        group = self.group_of(result)
        incident = self.open.get(group)
        started = state.streak_started if state.streak_started is not None else now
        if incident is not None:  # joins the incident already alerted: no second message
            incident.triggered.add(cid)
            incident.failing[cid] = result
            incident.first_failure_at = min(incident.first_failure_at, started)
            return None
        incident = Incident(group, result.host, now, started, {cid: result}, {cid})
        self.open[group] = incident
        return Transition("alert", incident)

    def _resolve(self, result: CheckResult, cid: str, now: float) -> Transition | None:
        group = self.group_of(result)
        incident = self.open.get(group)
        if incident is None:
            return None
        incident.triggered.discard(cid)
        if incident.triggered:
            return None
        incident.resolved_at = now
        del self.open[group]
        return Transition("resolved", incident)

    def failing_now(self, incident: Incident) -> list[CheckResult]:
        """The incident's checks whose last result failed."""
        return [self.checks[cid].last for cid in incident.failing  # type: ignore[misc]
                if cid in self.checks and self.checks[cid].last is not None
                and is_failure(self.checks[cid].last)]  # type: ignore[arg-type]


def recover_target(result: CheckResult) -> str | None:
    """Which `adapto recover` fits a failed check: "backend", "nginx" or None (not ours)."""
    command = result.next_command or ""
    for what in ("backend", "nginx"):
        if f"recover {what}" in command:
            return what
    if result.kind == "config":
        return "nginx"
    if result.kind in {"process", "500"} and result.component.startswith(("instance", "pm2")):
        return "backend"
    return None
