"""The last deploy of a host, for the alert that may name it (read only when an alert opens).

The connection is opened on the first alert and kept for the next ones, so
naming the release adds one short command to an alert, not an SSH login.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from adapto_ops.selection import Selection


class DeployHistory:
    """Callable: host -> the last line of its deploy history (a deploy or rollback), or None."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self._transports: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, host: str) -> dict[str, Any] | None:
        from adapto_ops.commands.release import read_history
        from adapto_ops.deploy.session import open_transport
        from adapto_ops.errors import AdaptoError

        target = next(t for t in self.selection.targets if t.host.name == host)
        with self._lock:
            transport = self._transports.get(host)
            if transport is None:
                transport = self._transports[host] = open_transport(self.selection, target)
        try:
            result = transport.run(read_history(target.layout, 1), check=False, mutates=False,
                                   what="read the deploy history", timeout=15)
        except AdaptoError:
            self._close(host)  # reopened on the next alert
            raise
        try:
            last = json.loads(result.stdout.strip().splitlines()[-1])
        except (json.JSONDecodeError, IndexError):
            return None
        return last if isinstance(last, dict) else None

    def _close(self, host: str) -> None:
        with self._lock:
            transport = self._transports.pop(host, None)
        if transport is not None:
            try:
                transport.close()
            except Exception:  # a dead connection: closing is best effort
                pass

    def close(self) -> None:
        for host in list(self._transports):
            self._close(host)
