"""The monitor's results file: one JSON line per round, appended and flushed at once."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from adapto_ops.errors import AdaptoError
from adapto_ops.health.model import CheckResult, overall


def round_record(number: int, started: str, took_ms: float, results: list[CheckResult],
                 events: list[dict[str, Any]]) -> dict[str, Any]:
    """What one round appends: when, how long, the overall status, every check, what happened."""
    return {"round": number, "time": started, "took_ms": round(took_ms, 1),
            "status": overall(results) if results else "fail",
            "checks": [r.as_dict() for r in results], "events": events}


# A round of a dozen checks is ~4 kB: every 30 s that is ~10 MB a day. Past this
# size the file becomes <name>.1 (replacing the previous one) and a new one starts.
MAX_BYTES = 50 * 1024 * 1024


class ResultsFile:
    """Appends rounds to a JSONL file (created with its folder; readable by its owner only)."""

    def __init__(self, path: Path, max_bytes: int = MAX_BYTES) -> None:
        self.path, self.max_bytes = path, max_bytes
        self._file = self._open()

    def _open(self) -> Any:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise AdaptoError(f"monitor results file {self.path}: {exc.strerror or exc}") \
                from None
        return os.fdopen(fd, "a", encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        # One write per line, flushed: a reader (or a crash) never sees half a round.
        self._file.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
        self._file.flush()
        if self._file.tell() > self.max_bytes:
            self._file.close()
            os.replace(self.path, self.path.with_name(self.path.name + ".1"))
            self._file = self._open()

    def close(self) -> None:
        self._file.close()


def read_rounds(path: Path) -> list[dict[str, Any]]:
    """Every complete round in a results file (a torn last line is skipped)."""
    rounds = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rounds.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rounds
