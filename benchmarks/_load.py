"""Steady HTTPS load for benchmarks/deploy.py: N TLS connections, paced, bounded.

Each of ``connections`` workers owns one ``httpx.AsyncClient`` limited to one
connection, so N TLS connections really stay open side by side for the whole
run (one shared pool would let paced workers share fewer connections). The
workers run on an asyncio loop in a background thread; the caller's thread
is free to run the command under test (``subprocess.run`` releases the GIL).

Requests are paced to ``rate`` per second in total, so the generator keeps
its own CPU use moderate on a 2-core machine that also runs nginx, the
backends and the deploy: a failure window of a few milliseconds still meets
several requests at 16 connections x ~25 req/s each. The run stops at
``stop()``, after ``max_seconds``, or after ``max_requests``, whichever comes
first; in-flight requests are allowed to finish, never cancelled (a
cancelled request would look like a failure).

Counted as failed: any status other than 200 and any transport error
(connect, read, protocol, timeout), by kind.
"""

from __future__ import annotations

import asyncio
import json
import math
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")


@dataclass
class LoadResult:
    label: str
    total: int = 0
    failed: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    releases: Counter[str] = field(default_factory=Counter)  # which release answered (200s)
    latencies_ms: list[float] = field(default_factory=list)
    failure_times: list[float] = field(default_factory=list)  # seconds since load start
    failure_walls: list[float] = field(default_factory=list)  # time.time() when each failed
    last_failure_s: float = -math.inf  # seconds since load start of the latest failure
    duration_s: float = 0.0
    connections: int = 0
    peak_in_flight: int = 0
    cpu_s: float = 0.0  # CPU of this process while the load ran (the generator's own)
    capped: str = ""  # "time" or "requests" when a cap ended the run early

    @property
    def rps(self) -> float:
        return self.total / self.duration_s if self.duration_s else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
        return ordered[index]

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu_s / self.duration_s if self.duration_s else 0.0

    def kinds(self) -> str:
        return ", ".join(f"{k}: {n}" for k, n in self.by_kind.most_common()) or "-"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class LoadRunner:
    """Start with ``start()``, end with ``stop()`` (returns the figures)."""

    def __init__(
        self,
        url: str,
        server_name: str,
        *,
        label: str = "",
        connections: int = 16,
        rate: float = 400.0,
        timeout_s: float = 10.0,
        max_seconds: float = 60.0,
        max_requests: int = 30000,
    ) -> None:
        self.url, self.server_name = url, server_name
        self.connections, self.rate, self.timeout_s = connections, rate, timeout_s
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.result = LoadResult(label, connections=connections)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._in_flight = 0
        self._started = 0.0

    # --- the caller's side ------------------------------------------------------

    def start(self) -> LoadRunner:
        """Open every connection (TLS handshakes done), then load; returns once it runs."""
        self._thread = threading.Thread(target=self._thread_main, name="load", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"load generator failed to start: {self._error}")
        return self

    def stop(self) -> LoadResult:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(self.timeout_s + 30)
        if self._error is not None:
            raise RuntimeError(f"load generator failed: {self._error!r}")
        return self.result

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._started if self._started else 0.0

    def around(self, action: Callable[[], T], lead_s: float) -> tuple[T, float]:
        """Run ``action()`` under this started load: ``lead_s`` of load before it, then on
        until ``lead_s`` after its end and after the last failure (so an outage that
        outlasts the command is seen whole), within the caps. Returns (outcome, seconds)."""
        time.sleep(lead_s)
        started = time.perf_counter()
        outcome = action()
        took = time.perf_counter() - started
        ended = self.elapsed_s
        while self.elapsed_s < self.max_seconds and not self.result.capped:
            now = self.elapsed_s
            if now - ended >= lead_s and now - self.result.last_failure_s >= lead_s:
                break
            time.sleep(0.02)
        return outcome, took

    # --- the load thread ------------------------------------------------------------

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the caller by start()/stop()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        import httpx

        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        clients = [
            httpx.AsyncClient(http1=True, http2=False, verify=False, limits=limits,
                              timeout=self.timeout_s, headers={"Host": self.server_name})
            for _ in range(self.connections)
        ]
        try:
            # Warm-up: every connection's TLS handshake happens before the clock starts.
            warm = await asyncio.gather(*(self._get(c) for c in clients),
                                        return_exceptions=True)
            bad = [w for w in warm if isinstance(w, BaseException)]
            if bad:
                raise RuntimeError(f"{len(bad)}/{len(clients)} warm-up requests failed: "
                                   f"{bad[0]!r}")
            cpu0 = _cpu_s()
            self._started = time.perf_counter()
            self._ready.set()
            await asyncio.gather(*(self._worker(i, c) for i, c in enumerate(clients)))
            self.result.duration_s = time.perf_counter() - self._started
            self.result.cpu_s = _cpu_s() - cpu0
        finally:
            for client in clients:
                await client.aclose()

    async def _get(self, client: httpx.AsyncClient) -> httpx.Response:
        # The URL names the address; SNI and Host name the site, as a browser would send them.
        return await client.get(self.url, extensions={"sni_hostname": self.server_name})

    async def _worker(self, index: int, client: httpx.AsyncClient) -> None:
        interval = self.connections / self.rate
        next_at = self._started + interval * index / self.connections  # staggered start
        result = self.result
        while not self._stop.is_set():
            now = time.perf_counter()
            if now - self._started >= self.max_seconds:
                result.capped = result.capped or "time"
                return
            if result.total >= self.max_requests:
                result.capped = result.capped or "requests"
                return
            if next_at > now:
                await asyncio.sleep(next_at - now)
                if self._stop.is_set():
                    return
            # Closed loop, paced: a slow answer delays this worker, it never bursts after.
            next_at = max(next_at + interval, time.perf_counter())
            await self._one(client)

    async def _one(self, client: httpx.AsyncClient) -> None:
        result = self.result
        self._in_flight += 1
        result.peak_in_flight = max(result.peak_in_flight, self._in_flight)
        sent = time.perf_counter()
        kind = ""
        try:
            response = await self._get(client)
            if response.status_code != 200:
                kind = f"HTTP {response.status_code}"
            else:
                try:
                    release = json.loads(response.content).get("release", "?")
                except (ValueError, AttributeError):
                    release = "?"
                result.releases[str(release)] += 1
        except Exception as exc:  # any transport error counts, by its kind
            kind = type(exc).__name__
        finally:
            self._in_flight -= 1
        done = time.perf_counter()
        result.total += 1
        result.latencies_ms.append((done - sent) * 1000)
        if kind:
            result.failed += 1
            result.by_kind[kind] += 1
            result.failure_times.append(done - self._started)
            result.failure_walls.append(time.time())
            result.last_failure_s = done - self._started
