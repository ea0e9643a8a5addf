"""One JSON line per event on stdout: what ``adapto logs backend`` shows.

flush on every line: stdout to a PM2 log file is block-buffered, and a line
that shows up minutes late (or never, on SIGKILL) is useless in an incident.
"""

from __future__ import annotations

import contextvars
import json
import sys
from datetime import UTC, datetime
from typing import Any

# The current request's id, so a line logged deep inside a handler carries it.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


def log(level: str, **fields: Any) -> None:
    """Print one JSON log line: ts, level, request_id, then ``fields``."""
    line = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "level": level,
        "request_id": fields.pop("request_id", None) or request_id.get(),
        **fields,
    }
    sys.stdout.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()
