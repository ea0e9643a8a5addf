"""The WebSocket at /ws (and /ws/...), the path nginx proxies.

On connect: {"type":"hello","release","instance"}. Without a token a client
may ping ({"type":"ping"} -> {"type":"pong"}) and anything else comes back as
sent: adapto's health check does that round trip and carries no token.
{"type":"auth","token":JWT} (or ?token= on the URL) authenticates; a bad or
expired token closes with 4401. An authenticated client then receives
{"type":"message","message":{...}} for every new message it may see.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from aiplatform import logs
from aiplatform.auth.tokens import InvalidToken, verify_access_token
from aiplatform.db import DatabaseNotConfigured, as_user
from aiplatform.realtime.fanout import QUEUE_SIZE, Fanout, Subscriber, read_as

router = APIRouter()

UNAUTHORIZED = 4401


def _control(text: str) -> dict[str, Any] | None:
    """The JSON object if ``text`` is a ping or auth control message, else None (echo it)."""
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(data, dict) and data.get("type") in ("ping", "auth"):
        return data
    return None


async def _is_admin(claims: dict[str, Any]) -> bool:
    # Only widens which notifications are read back (under RLS): when the
    # database cannot say, the client is treated as a plain user.
    try:
        async with as_user(claims) as conn:
            cursor = await conn.execute("select public.is_admin() as admin")
            row = await cursor.fetchone()
    except DatabaseNotConfigured:
        return False
    except Exception as error:
        logs.log("warning", event="admin lookup failed", error=type(error).__name__)
        return False
    return bool(row and row["admin"])


class Connection:
    """One client: its socket, its identity once authenticated, its outgoing lock."""

    def __init__(self, websocket: WebSocket) -> None:
        self.ws = websocket
        self.lock = asyncio.Lock()
        self.subscriber: Subscriber | None = None
        self.expires_at: float | None = None
        self.fanout: Fanout | None = getattr(websocket.app.state, "fanout", None)
        # One queue for the connection's life: a re-auth swaps the subscriber, not the queue.
        self.queue: asyncio.Queue[int] = asyncio.Queue(QUEUE_SIZE)

    async def send_text(self, text: str) -> None:
        """Send under the lock: pushes and replies come from two tasks."""
        async with self.lock:
            await self.ws.send_text(text)

    async def authenticate(self, token: str) -> bool:
        """Verify ``token`` and subscribe; False (and closed with 4401) when it is bad."""
        try:
            claims = verify_access_token(self.ws.app.state.settings.jwt_secret, token)
        except InvalidToken as error:
            async with self.lock:
                await self.ws.close(UNAUTHORIZED, str(error)[:100])
            return False
        if self.subscriber is not None and self.fanout is not None:
            self.fanout.unsubscribe(self.subscriber)
        self.subscriber = Subscriber(claims, await _is_admin(claims), self.queue)
        self.expires_at = float(claims["exp"])
        if self.fanout is not None:
            self.fanout.subscribe(self.subscriber)
        await self.send_text(json.dumps({"type": "auth_ok", "user_id": claims["sub"]}))
        return True

    async def push(self) -> None:
        """Forward the subscriber's queued messages until cancelled."""
        while True:
            message_id = await self.queue.get()
            if self.subscriber is None:
                continue
            event = await read_as(self.subscriber.claims, message_id)
            if event is not None:
                await self.send_text(json.dumps(event, ensure_ascii=False))

    def close(self) -> None:
        """Unsubscribe."""
        if self.subscriber is not None and self.fanout is not None:
            self.fanout.unsubscribe(self.subscriber)


async def _serve(websocket: WebSocket) -> None:
    await websocket.accept()
    settings = websocket.app.state.settings
    await websocket.send_text(json.dumps(
        {"type": "hello", "release": settings.release, "instance": settings.instance}))
    conn = Connection(websocket)
    token = websocket.query_params.get("token")
    if token and not await conn.authenticate(token):
        return
    pusher = asyncio.create_task(conn.push())
    try:
        while True:
            timeout = None if conn.expires_at is None else conn.expires_at - time.time()
            if timeout is not None and timeout <= 0:
                async with conn.lock:
                    await websocket.close(UNAUTHORIZED, "token expired")
                return
            try:
                async with asyncio.timeout(timeout):
                    message = await websocket.receive()
            except TimeoutError:
                continue  # the token just expired: closed at the top of the loop
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                text: str = message["text"]
                control = _control(text)
                if control is None:
                    await conn.send_text(text)
                elif control["type"] == "ping":
                    await conn.send_text('{"type":"pong"}')
                elif not await conn.authenticate(str(control.get("token", ""))):
                    return
            elif message.get("bytes") is not None:
                async with conn.lock:
                    await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return
    finally:
        pusher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pusher
        conn.close()


@router.websocket("/ws")
async def websocket_root(websocket: WebSocket) -> None:
    """The WebSocket (see the module's docstring)."""
    await _serve(websocket)


@router.websocket("/ws/{rest:path}")
async def websocket_sub(websocket: WebSocket, rest: str) -> None:
    """The same WebSocket under /ws/... (nginx may proxy a subpath)."""
    await _serve(websocket)
