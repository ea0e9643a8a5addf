"""Pure ASGI middleware: request id, one JSON log line per request, body size limit.

Pure ASGI (not BaseHTTPMiddleware): it wraps WebSockets too and never
buffers a response.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiplatform import logs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A client's X-Request-ID is kept only when it looks like an id (it ends up in logs).
SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Up to this many times the limit is read and dropped before the 413: answering
# mid-upload resets the connection under a client still sending, which then
# sees a reset instead of the 413. Far larger declared bodies are refused unread.
DRAIN_FACTOR = 8


class BodyTooLarge(Exception):
    """The request body passed the limit."""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


async def _json(send: Send, status: int, body: Any, request_id: str) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"x-request-id", request_id.encode()),
        ],
    })
    await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bool]:
    """The request's body messages, and whether the body passed ``limit``."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            messages.append(message)
            return messages, False
        size += len(message.get("body", b""))
        if size > limit * DRAIN_FACTOR:
            raise BodyTooLarge
        if size <= limit:
            messages.append(message)
        if not message.get("more_body", False):
            return messages, size > limit


class RequestContext:
    """Gives each request an id (X-Request-ID), logs it as one JSON line, caps its body."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and SANE_ID.match(given) else uuid.uuid4().hex
        token = logs.request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        started = time.monotonic()
        status: int | str = 500
        method = scope.get("method", "WS")

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                message["headers"] = [*headers, (b"x-request-id", rid.encode())]
            elif message["type"] == "websocket.accept":
                status = 101
            elif message["type"] == "websocket.close" and status != 101:
                status = 403  # closed before accept: the handshake was refused
            await send(message)

        try:
            if scope["type"] == "http":
                await self._http(scope, receive, send_with_id, rid)
            else:
                await self.app(scope, receive, send_with_id)
        except Exception as error:
            logs.log("error", event="unhandled", method=method, path=scope["path"],
                     error=type(error).__name__)
            raise
        finally:
            # The query string is left out: it may carry tokens (/ws?token=).
            logs.log("info", method=method, path=scope["path"], status=status,
                     ms=round((time.monotonic() - started) * 1000, 1))
            logs.request_id.reset(token)

    async def _http(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        too_large = {"error": "body too large", "limit": self.max_body}
        declared = _header(scope, b"content-length")
        if declared and declared.isdigit() and int(declared) > self.max_body * DRAIN_FACTOR:
            await _json(send, 413, too_large, rid)
            return
        try:
            messages, over = await _read_body(receive, self.max_body)
        except BodyTooLarge:
            await _json(send, 413, too_large, rid)
            return
        if over:
            await _json(send, 413, too_large, rid)
            return

        async def replay() -> Message:
            # The body as read, then the real channel (for the disconnect).
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
