"""New chat messages from PostgreSQL's NOTIFY to this instance's WebSocket clients.

Every instance LISTENs on the ``chat_messages`` channel (the table's trigger
NOTIFYs on insert, at commit), so a message written through any instance
reaches clients connected to any other: PostgreSQL is the broker. The
notification carries ids only; each candidate client reads the row back as
itself, so RLS, not this code, decides who receives it.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import psycopg

from aiplatform import logs
from aiplatform.db import as_user
from aiplatform.schemas import MessageOut

CHANNEL = "chat_messages"
RECONNECT_DELAY_S = 1.0
# A client that stops reading loses messages rather than growing memory.
QUEUE_SIZE = 256


@dataclass(eq=False)
class Subscriber:
    """One authenticated WebSocket client."""

    claims: dict[str, Any]
    is_admin: bool
    # Ids of new messages this client may see, oldest first.
    queue: asyncio.Queue[int]

    @property
    def user_id(self) -> str:
        """The client's user id (the token's sub)."""
        return str(self.claims["sub"])


class Fanout:
    """The instance's LISTEN connection and its subscribers."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.subscribers: set[Subscriber] = set()
        self.listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start listening in the background (reconnects on its own)."""
        self._task = asyncio.create_task(self._listen(), name="chat-fanout")

    async def stop(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def subscribe(self, subscriber: Subscriber) -> None:
        """Deliver new messages to ``subscriber`` from now on."""
        self.subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop delivering to ``subscriber``."""
        self.subscribers.discard(subscriber)

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                        self.database_url, autocommit=True, connect_timeout=5) as conn:
                    await conn.execute(f"listen {CHANNEL}")
                    self.listening.set()
                    logs.log("info", event="listening", channel=CHANNEL)
                    async for notify in conn.notifies():
                        self.dispatch(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Messages written while the listener is down are not pushed;
                # clients catch up through GET /api/chat/{dialog}/messages.
                self.listening.clear()
                logs.log("warning", event="listen connection lost", error=type(error).__name__)
                await asyncio.sleep(RECONNECT_DELAY_S)

    def dispatch(self, payload: str) -> None:
        """Hand one notification to the subscribers that may see it."""
        try:
            note = json.loads(payload)
            message_id, owner_id = int(note["id"]), str(note["owner_id"])
        except (ValueError, KeyError, TypeError):
            logs.log("warning", event="bad notification", channel=CHANNEL)
            return
        for subscriber in list(self.subscribers):
            # A cheap pre-filter; the read under RLS (read_as) is the real check.
            if subscriber.user_id == owner_id or subscriber.is_admin:
                try:
                    # Ids only: the connection reads them back one after the
                    # other, so its client sees messages in commit order.
                    subscriber.queue.put_nowait(message_id)
                except asyncio.QueueFull:
                    logs.log("warning", event="websocket client too slow, message dropped",
                             user_id=subscriber.user_id)


async def read_as(claims: dict[str, Any], message_id: int) -> dict[str, Any] | None:
    """The push for message ``message_id`` as ``claims`` may see it, or None (RLS hides it)."""
    try:
        async with as_user(claims) as conn:
            cursor = await conn.execute(
                "select id, dialog_id, owner_id, role, content, created_at"
                " from chat_messages where id = %s", (message_id,))
            row = await cursor.fetchone()
    except Exception as error:
        logs.log("warning", event="delivery failed", error=type(error).__name__)
        return None
    if row is None:
        return None
    return {"type": "message", "message": MessageOut(**row).model_dump(mode="json")}
