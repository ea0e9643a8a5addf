"""Drain on SIGTERM/SIGINT, so that no request nginx sends is lost while an instance stops.

uvicorn's own shutdown stops listening and at once closes every idle
keep-alive connection. nginx keeps idle connections to each instance in its
upstream keepalive pool; one it takes from the pool at the instant uvicorn
closes it has its request written into a closing socket, and nginx logs
"upstream prematurely closed connection" or "Connection reset by peer". A
GET is then retried on the other instance; a POST is not (nginx never resends
a non-idempotent request it has sent), so the client gets 502 — and it must
not be resent, or it could be processed twice.

The cure is to let the client side close idle connections, as HTTP/1.1
intends, never the server under the client:

1. stop listening: a new connection is refused, which nginx retries on the
   next instance for any method (nothing was sent);
2. answer every further request with ``Connection: close`` (nginx then does
   not return that connection to its pool);
3. never close an idle connection ourselves: wait until nginx has closed
   them all (its upstream ``keepalive_timeout`` is 4 s, below uvicorn's 5 s
   idle timeout), at most ``DRAIN_TIMEOUT_S`` (default 5 s; PM2's
   kill_timeout must leave room for it; 0 turns the drain off);
4. then uvicorn's own shutdown (in-flight requests finish, lifespan ends).

uvicorn has no hook between signal and shutdown, and PM2 starts the backend
as ``uvicorn app:app``: ``install()`` wraps ``uvicorn.Server.shutdown``. If a
uvicorn version lacks what the drain reads, it logs that and shuts down as
uvicorn does.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from aiplatform import logs

HTTP_PROTOCOLS = frozenset({"H11Protocol", "HttpToolsProtocol"})


class _State:
    draining = False


state = _State()


def drain_timeout_s() -> float:
    """How long to wait for nginx to close its connections (DRAIN_TIMEOUT_S, default 5;
    0 turns the drain off: uvicorn's own shutdown, as before)."""
    try:
        return max(0.0, float(os.environ.get("DRAIN_TIMEOUT_S", "5")))
    except ValueError:
        return 5.0


class CloseWhenDraining:
    """ASGI middleware: while draining, every HTTP response says ``Connection: close``.

    uvicorn honours an application's ``Connection: close`` header: it closes the
    connection once that response is sent, and nginx does not pool it.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_closing(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and state.draining:
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, send_closing)


def _http_connections(server: Any) -> list[Any]:
    # WebSockets are not waited for: chat sockets stay open for an hour, and
    # uvicorn's shutdown closes them with a close frame the client expects.
    return [c for c in server.server_state.connections
            if type(c).__name__ in HTTP_PROTOCOLS]


async def drain(server: Any, sockets: list[Any] | None = None) -> None:
    """Steps 1-3 of the module docstring on a running ``uvicorn.Server``."""
    timeout = drain_timeout_s()
    if timeout <= 0:
        return
    try:
        listeners, connections = list(server.servers), server.server_state.connections
    except AttributeError as exc:  # another uvicorn: its own shutdown only
        logs.log("warning", event="drain-skipped", reason=f"uvicorn without {exc.name}")
        return
    started = time.monotonic()
    state.draining = True
    for listener in listeners:
        listener.close()
    for sock in sockets or []:
        sock.close()
    open_at_start = len(_http_connections(server))
    deadline = started + timeout
    while _http_connections(server) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    left = len(_http_connections(server))
    # connections: HTTP ones open when the drain began; left: still open at its end
    # (closed by uvicorn's shutdown next); websockets: closed by it with a close frame.
    logs.log("info", event="drained", connections=open_at_start, left=left,
             ms=round((time.monotonic() - started) * 1000), websockets=len(connections) - left)


def install() -> None:
    """Make ``uvicorn.Server.shutdown`` drain first (once per process)."""
    try:
        from uvicorn.server import Server
    except ImportError:  # served by something else: nothing to wrap
        return
    if getattr(Server.shutdown, "drains", False):
        return
    original = Server.shutdown

    async def shutdown(self: Any, sockets: list[Any] | None = None) -> None:
        await drain(self, sockets)
        await original(self, sockets=sockets)

    shutdown.drains = True  # type: ignore[attr-defined]
    Server.shutdown = shutdown  # type: ignore[method-assign]
