"""Reference backend for adapto: a raw ASGI app served by uvicorn.

adapto deploys this folder as-is and starts each instance from inside it with
``.venv/bin/uvicorn app:app --host {bind} --port {port}``. It stands in for
the real platform backend in sandbox rehearsals, so it only does what a deploy
needs to observe: which release and instance answered, whether health passes,
whether in-flight requests survive a graceful stop, and whether WebSockets
pass through nginx.

No framework on purpose: the only dependencies are uvicorn and websockets
(which uvicorn needs for WebSocket support), so ``pip install`` in a fresh
venv on every release stays quick.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Resolved once at import: the instance keeps reporting (and checking markers
# in) the release it was started from, even after `current` is repointed.
APP_DIR = Path(__file__).resolve().parent

# Tests and rehearsals make a release that never comes up by shipping this file.
if (APP_DIR / "CRASH_ON_START").exists():
    print("CRASH_ON_START is present: refusing to start", file=sys.stderr, flush=True)
    raise SystemExit(3)


def _read_release() -> str:
    try:
        release = (APP_DIR / "RELEASE").read_text(encoding="utf-8").strip()
    except OSError:
        return "dev"
    return release or "dev"


def _read_port() -> int | None:
    try:
        return int(os.environ["PORT"])
    except (KeyError, ValueError):
        return None


# Read once: a release's files never change after it is deployed.
RELEASE = _read_release()
INSTANCE = os.environ.get("ADAPTO_INSTANCE", "")
PORT = _read_port()
STARTED = time.monotonic()

# Configuration the platform reads. Health reports only whether each is set,
# never a value: health answers anyone who can reach /api/.
CONFIG_NAMES = (
    "SUPABASE_URL",
    "SUPABASE_ANON_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "TELEGRAM_BOT_TOKEN",
    "GIGACHAT_AUTH_KEY",
)

MAX_BODY = 1024 * 1024
# Up to this much of an oversized body is read and dropped before the 413.
MAX_DRAIN = 8 * MAX_BODY
MAX_SLEEP_MS = 10_000
WS_PATH = "/ws"


def _failing() -> bool:
    # Checked per request so a test can make a running instance fail its
    # health check (and nginx or a deploy notice) without restarting it.
    return os.environ.get("ADAPTO_FAIL_HEALTH") == "1" or (APP_DIR / "FAIL_HEALTH").exists()


def _log(method: str, path: str, status: int | str, started: float) -> None:
    # flush: stdout to a PM2 log file is block-buffered, and a line that
    # shows up minutes late (or never, on SIGKILL) is useless for a deploy.
    duration_ms = (time.monotonic() - started) * 1000
    print(f"{method} {path} {status} {duration_ms:.1f}ms", flush=True)


class HTTPError(Exception):
    """An error answer raised from a handler: status plus a JSON body."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or []


async def _send_json(
    send: Send,
    status: int,
    body: Any,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                # API answers describe one instance at one moment: never cache them.
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The request body, or 413 once it passes MAX_BODY."""
    too_large = HTTPError(413, {"error": "body too large", "limit": MAX_BODY})
    for name, value in scope["headers"]:
        # Far too large: refuse without reading (uvicorn then drops the connection).
        if name == b"content-length" and value.isdigit() and int(value) > MAX_DRAIN:
            raise too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionAbortedError("client went away while sending the body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY:
            chunks.append(chunk)
        elif size > MAX_DRAIN:
            raise too_large
        if not message.get("more_body", False):
            break
    # A body a little over the limit is read to its end and dropped before the
    # 413: answering mid-upload closes the connection under a client that is
    # still sending, and it then sees a reset instead of the 413.
    if size > MAX_BODY:
        raise too_large
    return b"".join(chunks)


def _require(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise HTTPError(
            405,
            {"error": "method not allowed", "allowed": list(allowed)},
            [(b"allow", ", ".join(allowed).encode())],
        )


def _health() -> tuple[int, dict[str, Any]]:
    if _failing():
        # release and instance too, so a failed deploy says which one failed.
        return 503, {"status": "failing", "release": RELEASE, "instance": INSTANCE}
    return 200, {
        "status": "ok",
        "release": RELEASE,
        "instance": INSTANCE,
        "pid": os.getpid(),
        "port": PORT,
        "uptime_s": round(time.monotonic() - STARTED, 3),
        "config": {name: bool(os.environ.get(name)) for name in CONFIG_NAMES},
    }


async def _slow(query: str) -> dict[str, Any]:
    raw = parse_qs(query).get("ms", ["0"])[-1]
    try:
        ms = int(raw)
    except ValueError:
        raise HTTPError(400, {"error": "ms must be an integer"}) from None
    ms = max(0, min(ms, MAX_SLEEP_MS))
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


async def _http(scope: Scope, receive: Receive, send: Send) -> None:
    method: str = scope["method"]
    path: str = scope["path"]
    started = time.monotonic()
    status = 500
    try:
        body: Any
        if path == "/api/health":
            _require(method, "GET", "HEAD")
            status, body = _health()
        elif path == "/api/version":
            _require(method, "GET", "HEAD")
            status, body = 200, {"release": RELEASE, "instance": INSTANCE}
        elif path == "/api/slow":
            _require(method, "GET")
            status, body = 200, await _slow(scope["query_string"].decode("latin-1"))
        elif path == "/api/echo":
            _require(method, "POST")
            raw = await _read_body(scope, receive)
            try:
                body = json.loads(raw)
            except (UnicodeDecodeError, json.JSONDecodeError):
                raise HTTPError(400, {"error": "body is not JSON"}) from None
            status = 200
        elif path == "/api/auth/ping":
            _require(method, "GET", "HEAD")
            status, body = 200, {"ok": True}
        else:
            # The SPA's own paths are nginx's business: anything here is a miss.
            raise HTTPError(404, {"error": "not found", "path": path})
        await _send_json(send, status, body)
    except HTTPError as error:
        status = error.status
        await _send_json(send, error.status, error.body, error.headers)
    except ConnectionAbortedError:
        status = 499  # nginx's code for "client closed the request"
    finally:
        # The query string is left out: it may carry tokens.
        _log(method, path, status, started)


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    path: str = scope["path"]
    started = time.monotonic()
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if path != WS_PATH and not path.startswith(WS_PATH + "/"):
        # Closing before accept makes uvicorn answer the handshake with 403.
        await send({"type": "websocket.close", "code": 1008})
        _log("WS", path, 403, started)
        return
    await send({"type": "websocket.accept"})
    hello = {"type": "hello", "release": RELEASE, "instance": INSTANCE}
    await send({"type": "websocket.send", "text": json.dumps(hello)})
    code = 1000
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            code = message.get("code", 1000)
            break
        # Echo exactly what came, text as text and binary as binary.
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        elif message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
    _log("WS", path, code, started)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            pid = os.getpid()
            print(f"started release={RELEASE} instance={INSTANCE or '-'} pid={pid}", flush=True)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            print(f"stopping release={RELEASE} instance={INSTANCE or '-'}", flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI entry point uvicorn loads as ``app:app``."""
    if scope["type"] == "http":
        await _http(scope, receive, send)
    elif scope["type"] == "websocket":
        await _websocket(scope, receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)
