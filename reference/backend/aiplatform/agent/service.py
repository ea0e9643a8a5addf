"""The agent in a dialog: retrieve, answer, store the answer as the assistant's message.

Shared by the web chat (the hook on app.state.on_user_message), the widget and
the Telegram webhook. Retrieval and writes run on the caller's connections;
the provider is called between transactions, so no pooled connection waits on
a model.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncConnection

from aiplatform import logs
from aiplatform.db import as_user

from . import retrieval
from .provider import Answer, AnswerProvider, Passage

MESSAGE_COLUMNS = "id, dialog_id, owner_id, role, content, created_at"


async def store_message(
    conn: AsyncConnection[Any], dialog_id: str, owner_id: str, role: str, content: str
) -> dict[str, Any]:
    """Insert a chat message (its NOTIFY reaches the owner's WebSockets at commit)."""
    cursor = await conn.execute(
        "insert into chat_messages (dialog_id, owner_id, role, content)"
        f" values (%s, %s, %s, %s) returning {MESSAGE_COLUMNS}",
        (dialog_id, owner_id, role, content),
    )
    row = await cursor.fetchone()
    assert row is not None
    return row


async def passages_for(
    conn: AsyncConnection[Any], project_id: str, question: str
) -> list[Passage]:
    """The passages retrieval finds for `question` in `project_id`."""
    return await retrieval.search(conn, project_id, question)


def web_chat_answerer(
    provider_of: Callable[[], AnswerProvider],
) -> Callable[[dict[str, Any], dict[str, Any]], Awaitable[None]]:
    """The hook that answers a user's message in a web dialog (runs after the response).

    Everything runs as the user who wrote the message: RLS limits retrieval to
    that user's knowledge and lets the answer into that user's dialog only.
    The agent stays silent when the project's knowledge has nothing on the
    message: a web dialog is also where the owner and operators talk, and a
    "no answer" reply to every one of their lines would only be noise.
    """

    async def answer(claims: dict[str, Any], message: dict[str, Any]) -> None:
        dialog_id = str(message["dialog_id"])
        try:
            async with as_user(claims) as conn:
                cursor = await conn.execute(
                    "select project_id::text as project_id from dialogs where id = %s",
                    (dialog_id,))
                dialog = await cursor.fetchone()
                if dialog is None:
                    return
                passages = await passages_for(conn, dialog["project_id"], message["content"])
            if not passages:
                return
            reply: Answer = await provider_of().answer(message["content"], passages)
            async with as_user(claims) as conn:
                await store_message(conn, dialog_id, str(message["owner_id"]), "assistant",
                                    reply.text)
        except Exception as error:  # a background task: log, never crash the worker
            logs.log("error", event="agent answer failed", dialog_id=dialog_id,
                     error=type(error).__name__)

    return answer
