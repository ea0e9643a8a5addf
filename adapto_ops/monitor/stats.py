"""Uptime and latency per check over the monitor's run (what the live table shows)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from adapto_ops.health.model import CheckResult
from adapto_ops.monitor.state import check_id, is_failure

# Enough for a day of 1-second rounds; older latencies drop out of p50/p95.
MAX_SAMPLES = 100_000


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_ms(result: CheckResult) -> float | None:
    """The check's measured time: its observed value when that is in ms, else how long it took."""
    if result.observed_unit == "ms" and isinstance(result.observed_value, int | float) \
            and not isinstance(result.observed_value, bool):
        return float(result.observed_value)
    return result.duration_ms


@dataclass
class CheckStats:
    """Rounds seen, rounds up, failures and latencies of one check."""

    host: str
    key: str
    name: str
    rounds: int = 0
    up: int = 0
    failures: int = 0
    last_status: str = "?"
    last_output: str = ""
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))

    @property
    def uptime(self) -> float | None:
        """Share of rounds that did not fail (0..1); None before the first round."""
        return self.up / self.rounds if self.rounds else None

    def p(self, pct: float) -> float | None:
        return percentile(list(self.latencies), pct)


class Stats:
    """Every check's :class:`CheckStats`, in the order checks first appeared."""

    def __init__(self) -> None:
        self.checks: dict[str, CheckStats] = {}
        self.rounds = 0

    def add(self, results: list[CheckResult]) -> None:
        self.rounds += 1
        for result in results:
            cid = check_id(result)
            stats = self.checks.get(cid)
            if stats is None:
                stats = self.checks[cid] = CheckStats(result.host, result.key, result.name)
            stats.rounds += 1
            stats.last_status = result.status
            stats.last_output = result.output
            if is_failure(result):
                stats.failures += 1
            else:
                stats.up += 1
                # Latency of answers only: a refused connection's 1 ms is not a fast API.
                ms = latency_ms(result)
                if ms is not None:
                    stats.latencies.append(ms)

    def rows(self) -> list[CheckStats]:
        return list(self.checks.values())
