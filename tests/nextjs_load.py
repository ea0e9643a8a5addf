"""Mixed GET + POST load through nginx over TLS, bounded, for tests/test_nextjs_e2e.py.

``get_connections`` workers GET /api/health and count which release answered;
``post_connections`` workers POST /api/messages with a unique ``client_id`` each,
so the test can match every 201 against the file the backend appends to and see
a request processed twice. Each worker owns one httpx client limited to one
connection (N TLS connections really stay open side by side), paced to ``rate``
requests per second in total, on an asyncio loop in a background thread. The
run ends at ``stop()``, after ``max_seconds`` or after ``max_requests``; requests
in flight are allowed to finish (a cancelled request would look like a failure).

Failed: a GET that is not 200, a POST that is not 201, any transport error.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx


@dataclass
class Tally:
    """What one kind of request saw."""

    total: int = 0
    failed: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    releases: Counter[str] = field(default_factory=Counter)  # release of each good answer
    accepted: list[str] = field(default_factory=list)  # POST: client_ids answered 201
    failed_ids: list[str] = field(default_factory=list)  # POST: client_ids that failed

    def kinds(self) -> str:
        return ", ".join(f"{k}: {n}" for k, n in self.by_kind.most_common()) or "-"


@dataclass
class Figures:
    get: Tally = field(default_factory=Tally)
    post: Tally = field(default_factory=Tally)
    seconds: float = 0.0

    def line(self) -> str:
        return (f"{self.seconds:.1f}s: GET {self.get.total} ({self.get.failed} failed: "
                f"{self.get.kinds()}), POST {self.post.total} ({self.post.failed} failed: "
                f"{self.post.kinds()})")


class MixedLoad:
    """``with MixedLoad(origin, name) as load: ...``; ``load.figures`` afterwards."""

    def __init__(self, origin: str, server_name: str, *, get_connections: int = 8,
                 post_connections: int = 4, rate: float = 120.0, max_seconds: float = 180.0,
                 max_requests: int = 40000) -> None:
        self.origin, self.server_name = origin, server_name
        self.workers = [("GET", i) for i in range(get_connections)] + [
            ("POST", i) for i in range(post_connections)]
        self.interval = len(self.workers) / rate
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.figures = Figures()
        self.run_id = uuid.uuid4().hex[:8]
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="nextjs-load", daemon=True)

    def __enter__(self) -> MixedLoad:
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"load did not start: {self._error!r}")
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(60)
        if self._error is not None:
            raise RuntimeError(f"load generator failed: {self._error!r}")

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by __enter__/__exit__
            self._error = exc
            self._ready.set()

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        clients = [httpx.AsyncClient(verify=False, limits=limits, timeout=15, trust_env=False,
                                     headers={"Host": self.server_name})
                   for _ in self.workers]
        try:
            # Every TLS handshake before the clock starts: a failed warm-up is a setup error.
            for client in clients:
                response = await client.get(f"{self.origin}/api/health")
                response.raise_for_status()
            started = time.perf_counter()
            self._ready.set()
            await asyncio.gather(*(self._worker(kind, i, c, started)
                                   for (kind, i), c in zip(self.workers, clients, strict=True)))
            self.figures.seconds = time.perf_counter() - started
        finally:
            for client in clients:
                await client.aclose()

    async def _worker(self, kind: str, index: int, client: httpx.AsyncClient,
                      started: float) -> None:
        next_at = started + self.interval * index / len(self.workers)
        tally = self.figures.get if kind == "GET" else self.figures.post
        sequence = 0
        while not self._stop.is_set():
            now = time.perf_counter()
            done = self.figures.get.total + self.figures.post.total
            if now - started >= self.max_seconds or done >= self.max_requests:
                return
            if next_at > now:
                await asyncio.sleep(next_at - now)
                continue
            next_at = max(next_at + self.interval, time.perf_counter())
            sequence += 1
            client_id = f"{self.run_id}-{kind}{index}-{sequence}"
            await self._one(kind, client, tally, client_id)

    async def _one(self, kind: str, client: httpx.AsyncClient, tally: Tally,
                   client_id: str) -> None:
        tally.total += 1
        try:
            if kind == "GET":
                response = await client.get(f"{self.origin}/api/health")
                good = response.status_code == 200
            else:
                response = await client.post(f"{self.origin}/api/messages",
                                             json={"text": "load", "client_id": client_id})
                good = response.status_code == 201
            failure = "" if good else f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            failure = type(exc).__name__
        if failure:
            tally.failed += 1
            tally.by_kind[failure] += 1
            if kind == "POST":
                tally.failed_ids.append(client_id)
            return
        tally.releases[str(response.json().get("release", "?"))] += 1
        if kind == "POST":
            tally.accepted.append(client_id)
