"""What `adapto recover` did on each host and what is true afterwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapto_ops.inventory.secrets import maskable_values

WHATS = ("backend", "nginx", "database")


@dataclass
class HostRecovery:
    """One host's outcome: healthy at the end, the actions taken, what still fails."""

    host: str
    healthy: bool = False
    actions: list[str] = field(default_factory=list)
    still_failing: list[str] = field(default_factory=list)
    now: list[str] = field(default_factory=list)  # what is true at the end, one line each
    nothing_to_do: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"host": self.host, "healthy": self.healthy, "nothing_to_do": self.nothing_to_do,
                "actions": self.actions, "still_failing": self.still_failing, "now": self.now}


@dataclass
class RecoverReport:
    """Every host's outcome, plus (for --dry-run) the commands that were not run."""

    what: str
    hosts: list[HostRecovery] = field(default_factory=list)
    dry_run: bool = False
    duration_s: float = 0.0
    recorded: list[Any] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """True when every host ended healthy (a dry run is judged on what it read)."""
        return all(h.healthy for h in self.hosts)

    @property
    def still_failing(self) -> list[str]:
        """``host: thing`` for each thing that still fails, hosts in order."""
        return [f"{h.host}: {thing}" for h in self.hosts for thing in h.still_failing]


def mask_secrets(text: str, secret_values: list[str]) -> str:
    """``text`` with every secret value replaced by ****, longest first (one may hold another)."""
    for value in maskable_values(secret_values):  # a URL's password alone too
        text = text.replace(value, "****")
    return text
