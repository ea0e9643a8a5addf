"""What one health check found: the value every reporter, the monitor and the gate share."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "warn", "fail"]
Observed = float | int | str | bool | None

# The runbook's failure kinds ("404", "500", WebSocket, Database, Authentication)
# plus those adapto adds. Each failed or warning check carries one.
KINDS = ("404", "500", "websocket", "database", "authentication", "tls", "rate-limited",
         "network", "process", "config", "disk", "slow")


@dataclass(frozen=True)
class CheckResult:
    """One check on one host.

    ``component`` and ``measurement`` name it as application/health+json does
    ("api:responseTime", "certificate:daysLeft"); ``name`` is what a person reads.
    ``output`` is one short line (a status line and a reason, never a page).
    """

    host: str
    component: str
    measurement: str
    name: str
    status: Status
    observed_value: Observed = None
    observed_unit: str | None = None
    output: str = ""
    kind: str | None = None  # one of KINDS when status is not pass
    next_command: str | None = None  # what to run next, when status is not pass
    duration_ms: float | None = None  # how long the check itself took
    endpoint: str | None = None  # the URL checked, when there is one
    time: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                            time.gmtime()))

    @property
    def key(self) -> str:
        """Unique per host: "<component>:<measurement>"."""
        return f"{self.component}:{self.measurement}"

    def as_dict(self) -> dict[str, Any]:
        """Every field, as plain JSON-able values."""
        return asdict(self)


def overall(results: list[CheckResult]) -> Status:
    """fail if any check failed, else warn if any warned, else pass."""
    statuses = {r.status for r in results}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"


def exit_code(results: list[CheckResult], *, strict: bool) -> int:
    """0 healthy, 1 a failure (or, with ``strict``, a warning)."""
    status = overall(results)
    return 1 if status == "fail" or (strict and status == "warn") else 0
