"""The nginx reload race on idle client keep-alive connections, counted.

On a graceful reload (SIGHUP) nginx's old workers close their idle client
keep-alive connections. A client that sends a request on such a connection
at that instant gets the connection closed (EOF or RST) before any answer:
the request failed although the server was healthy all along.

Here ``clients`` TLS connections to nginx each make one request (so each is
a reused, idle keep-alive connection), sit idle, and then, for each of
``reloads`` reloads, send a GET spread over the ``spread_s`` after the SIGHUP.
Two kinds of client are counted from the same attempts:

- *careful*: like httpx or curl, it reconnects when the connection is
  already seen closed before it sends, but it never resends a request that
  was written: a close after the write is a failure;
- *browser-like*: the same, plus what Chromium and Firefox do for an
  idempotent request on a reused connection that fails before any byte of
  the answer arrived: resend it ONCE on a new connection. A failure is
  counted only when that resend fails too.

Only loopback is contacted (the sandbox's nginx); bounded by ``reloads``.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RaceFigures:
    """What ``reload_race`` counted."""

    reloads: int = 0
    clients: int = 0
    requests: int = 0
    closed_before_send: int = 0  # seen closed while idle: reconnected, not a failure
    careful_failed: int = 0  # written, then closed before any answer byte
    reloads_with_failure: int = 0
    browser_failed: int = 0  # still failed after the one resend
    other_failed: int = 0  # a status other than 200, or a failure on a fresh connection
    kinds: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly summary."""
        return {"scenario": "nginx reload, idle keep-alive clients", "method": "GET",
                "reloads": self.reloads, "clients": self.clients, "requests": self.requests,
                "closed_before_send": self.closed_before_send,
                "failed": self.careful_failed + self.other_failed,
                "failed_by_kind": dict(self.kinds),
                "reloads_with_failure": self.reloads_with_failure,
                "browser_like_failed": self.browser_failed + self.other_failed,
                "seconds": round(self.seconds, 1)}


class _Conn:
    def __init__(self, address: str, port: int, server_name: str, tls: ssl.SSLContext) -> None:
        self.address, self.port, self.server_name, self.tls = address, port, server_name, tls
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.close()
        self.reader, self.writer = await asyncio.open_connection(
            self.address, self.port, ssl=self.tls, server_hostname=self.server_name)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    def looks_closed(self) -> bool:
        """What a careful client checks before reusing a pooled connection."""
        return (self.reader is None or self.writer is None or self.reader.at_eof()
                or self.writer.is_closing())

    async def get(self, request: bytes) -> tuple[int | None, str]:
        """(status, "") or (None, why) when the connection ended before any answer byte."""
        assert self.reader is not None and self.writer is not None
        try:
            self.writer.write(request)
            await self.writer.drain()
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)
        except (TimeoutError, OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            partial = getattr(exc, "partial", b"")
            return None, ("answer began" if partial else type(exc).__name__)
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status, ""


def _request(server_name: str, path: str, token: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {server_name}", "Connection: keep-alive",
             "User-Agent: adapto-reload-race"]
    if token:
        lines.append(f"X-Adapto-Probe: {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _race(address: str, port: int, server_name: str, pid_file: Path, *, reloads: int,
                clients: int, idle_s: float, spread_s: float, path: str,
                token: str) -> RaceFigures:
    tls = ssl.create_default_context()
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    request = _request(server_name, path, token)
    conns = [_Conn(address, port, server_name, tls) for _ in range(clients)]
    figures = RaceFigures(clients=clients)
    rng = random.Random(0x5EED)

    async def warm(conn: _Conn) -> None:
        await conn.open()
        status, why = await conn.get(request)
        if status != 200:
            raise RuntimeError(f"warm-up request failed: {status or why}")

    async def one(conn: _Conn, delay: float) -> bool:
        await asyncio.sleep(delay)
        figures.requests += 1
        if conn.looks_closed():
            figures.closed_before_send += 1
            await conn.open()
            status, why = await conn.get(request)
            if status != 200:
                figures.other_failed += 1
                figures.kinds[why or f"HTTP {status}"] = figures.kinds.get(
                    why or f"HTTP {status}", 0) + 1
            return False
        status, why = await conn.get(request)
        if status == 200:
            return False
        if status is not None or why == "answer began":
            figures.other_failed += 1
            figures.kinds[why or f"HTTP {status}"] = figures.kinds.get(why or f"HTTP {status}",
                                                                       0) + 1
            await conn.open()
            return False
        figures.careful_failed += 1
        figures.kinds[why] = figures.kinds.get(why, 0) + 1
        await conn.open()  # the browser's one resend, on a new connection
        status, _ = await conn.get(request)
        if status != 200:
            figures.browser_failed += 1
        return True

    try:
        await asyncio.gather(*(warm(c) for c in conns))
        for _ in range(reloads):
            await asyncio.sleep(idle_s)
            pid = int(pid_file.read_text().split()[0])
            os.kill(pid, signal.SIGHUP)
            failed = await asyncio.gather(*(one(c, rng.uniform(0, spread_s)) for c in conns))
            figures.reloads += 1
            figures.reloads_with_failure += any(failed)
            # Old workers must be gone before the next round, or a round sees two reloads.
            await asyncio.sleep(0.3)
            for conn in conns:  # every connection used once more on the new workers
                if conn.looks_closed():
                    await conn.open()
                status, _ = await conn.get(request)
                if status != 200:
                    await conn.open()
    finally:
        for conn in conns:
            conn.close()
    return figures


def reload_race(address: str, port: int, server_name: str, pid_file: Path, *,
                reloads: int = 50, clients: int = 16, idle_s: float = 0.3,
                spread_s: float = 0.1, path: str = "/api/health",
                token: str = "") -> RaceFigures:
    """SIGHUP the nginx whose master pid is in ``pid_file`` ``reloads`` times while ``clients``
    idle keep-alive connections send a GET each, spread over ``spread_s`` after the signal.
    ``token`` is sent as X-Adapto-Probe (the per-address rate limit exempts it)."""
    started = time.monotonic()
    figures = asyncio.run(_race(address, port, server_name, pid_file, reloads=reloads,
                                clients=clients, idle_s=idle_s, spread_s=spread_s, path=path,
                                token=token))
    figures.seconds = time.monotonic() - started
    return figures
