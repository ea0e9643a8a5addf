"""A per-instance sliding-window rate limit for the auth endpoints.

In memory, per process: with N instances a client gets at most N times the
limit, which still stops password guessing at scale; nginx's limit_req (if
configured) is the shared one.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from fastapi import HTTPException, Request

# Behind nginx the peer is nginx on loopback, and the client is in X-Real-IP.
# The header is believed only from a loopback peer: anyone else could forge it.
TRUSTED_PROXIES = ("127.", "::1")
MAX_KEYS = 100_000


def client_address(request: Request) -> str:
    """The client's address: X-Real-IP from a loopback proxy, else the peer."""
    peer = request.client.host if request.client else "unknown"
    real = request.headers.get("x-real-ip")
    if real and peer.startswith(TRUSTED_PROXIES):
        return real.strip()[:64]
    return peer


class SlidingWindow:
    """At most ``limit`` hits per ``window_s`` seconds per key."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float | None = None) -> float:
        """Record a hit; returns 0 when allowed, else the seconds until the next is."""
        now = time.monotonic() if now is None else now
        if len(self._hits) > MAX_KEYS:
            self._hits.clear()  # a flood of addresses must not grow memory without bound
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window_s - now
        hits.append(now)
        return 0.0


def rate_limited(name: str) -> Callable[[Request], None]:
    """A dependency limiting endpoint ``name`` per client address (429 with Retry-After)."""

    def check(request: Request) -> None:
        window: SlidingWindow = request.app.state.auth_rate_limit
        wait = window.hit(f"{name}:{client_address(request)}")
        if wait > 0:
            raise HTTPException(429, "too many requests",
                                headers={"Retry-After": str(max(1, round(wait)))})

    return check
