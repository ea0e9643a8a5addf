"""Closed-loop HTTP/1.1 load over TLS with keep-alive, cheap enough to share 2 cores.

benchmarks/_load.py paces GETs through httpx, which costs ~1 ms of CPU per
request: at 64 connections flat out the generator itself would be the
bottleneck on a 2-core machine that also runs nginx, two uvicorn instances
and PostgreSQL. Here each of N connections is a raw asyncio TLS stream that
sends a prebuilt request, reads the answer (Content-Length or chunked) and
sends the next at once, for a bounded time or number of requests.

Counted as errors: a status other than the expected one, and any transport
error (by kind). Latency is from the request's first byte written to the
answer's last byte read.
"""

from __future__ import annotations

import asyncio
import math
import random
import resource
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Scenario:
    """One kind of request: prebuilt bytes and the status that means success."""

    label: str
    method: str
    path: str
    expect: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def request(self, host: str) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}",
                 "Connection: keep-alive", "User-Agent: adapto-bench"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        if self.body or self.method in {"POST", "PUT", "PATCH"}:
            lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass
class Figures:
    """What one scenario measured."""

    label: str
    connections: int
    total: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    cpu_s: float = 0.0  # the generator's own CPU while it ran
    capped: str = ""

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def rps(self) -> float:
        return self.total / self.duration_s if self.duration_s else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; its status code and whether the server closes the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status, headers.get("connection", "").lower() == "close"


class Load:
    """Run scenarios against one TLS endpoint (address:port, SNI and Host = server name)."""

    def __init__(self, address: str, port: int, server_name: str, tls: ssl.SSLContext) -> None:
        self.address, self.port, self.server_name, self.tls = address, port, server_name, tls

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.address, self.port, ssl=self.tls,
                                             server_hostname=self.server_name, limit=1 << 20)

    async def _worker(self, scenario: Scenario, figures: Figures,
                      stream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                      measure_from: float, deadline: float, max_requests: int,
                      interval: float) -> None:
        request = scenario.request(self.server_name)
        reader, writer = stream
        next_at = time.perf_counter() + interval * random.random()  # staggered when paced
        try:
            while time.perf_counter() < deadline:
                if figures.total >= max_requests:
                    figures.capped = "requests"
                    return
                if interval:
                    # Paced, closed loop: a slow answer delays this connection, never a burst.
                    now = time.perf_counter()
                    if next_at > now:
                        await asyncio.sleep(next_at - now)
                    next_at = max(next_at + interval, time.perf_counter())
                sent = time.perf_counter()
                try:
                    writer.write(request)
                    status, closing = await _read_answer(reader)
                    kind = "" if status == scenario.expect else f"HTTP {status}"
                    if closing:  # nginx's keepalive_requests (1000) reached: reconnect
                        writer.close()
                        reader, writer = await self._connect()
                except (OSError, asyncio.IncompleteReadError, ValueError, ssl.SSLError) as exc:
                    kind = type(exc).__name__
                    writer.close()
                    reader, writer = await self._connect()  # a new one, as a client would
                if sent < measure_from:  # warm-up: pools, caches, JIT-free but cold paths
                    continue
                figures.total += 1
                figures.latencies_ms.append((time.perf_counter() - sent) * 1000)
                if kind:
                    figures.errors[kind] += 1
        finally:
            writer.close()

    async def _run(self, scenario: Scenario, connections: int, seconds: float,
                   max_requests: int, warmup_s: float, rate: float | None) -> Figures:
        figures = Figures(scenario.label, connections)
        # Every TLS handshake is done before the clock starts: a browser's connection is
        # long-lived, and 64 handshakes would otherwise sit in the first requests' latency.
        streams = await asyncio.gather(*(self._connect() for _ in range(connections)))
        measure_from = time.perf_counter() + warmup_s
        deadline = measure_from + seconds
        await asyncio.sleep(0)
        cpu0 = _cpu_s()
        interval = connections / rate if rate else 0.0
        await asyncio.gather(*(self._worker(scenario, figures, stream, measure_from, deadline,
                                            max_requests, interval) for stream in streams))
        figures.duration_s = time.perf_counter() - measure_from
        figures.cpu_s = _cpu_s() - cpu0
        if not figures.capped:
            figures.capped = "time"
        return figures

    def run(self, scenario: Scenario, *, connections: int = 64, seconds: float = 10.0,
            max_requests: int = 100_000, warmup_s: float = 1.0,
            rate: float | None = None) -> Figures:
        """Load ``scenario`` on ``connections`` connections, flat out or at ``rate`` req/s in
        total; bounded in time and count."""
        return asyncio.run(self._run(scenario, connections, seconds, max_requests, warmup_s,
                                     rate))
