"""/api/chat: the messages of a dialog, paginated, and posting one.

A posted message reaches WebSocket clients on every instance through the
chat_messages trigger's NOTIFY (see realtime/), not through this module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Depends, Request

from aiplatform.auth.deps import current_user
from aiplatform.db import as_user
from aiplatform.db.deps import require_database
from aiplatform.routers.dialogs import visible_dialog
from aiplatform.schemas import Limit, MessageIn, MessageOut, Offset, Page, page

router = APIRouter(prefix="/api/chat", tags=["chat"],
                   dependencies=[Depends(require_database)])

MESSAGE_COLUMNS = "id, dialog_id, owner_id, role, content, created_at"

# Called after a user's message is committed (claims, message row), e.g. by
# the agent to answer it. Registered on app.state.on_user_message.
MessageHook = Callable[[dict[str, Any], dict[str, Any]], Awaitable[None]]


@router.get("/{dialog_id}/messages", response_model=Page[MessageOut])
async def list_messages(dialog_id: UUID, limit: Limit = 50, offset: Offset = 0,
                        claims: dict = Depends(current_user)) -> dict:
    """A dialog's messages, oldest first."""
    async with as_user(claims) as conn:
        await visible_dialog(conn, dialog_id)
        cursor = await conn.execute(
            f"select {MESSAGE_COLUMNS} from chat_messages where dialog_id = %s"
            " order by id limit %s offset %s", (dialog_id, limit + 1, offset))
        return page(await cursor.fetchall(), limit, offset)


@router.post("/{dialog_id}/messages", status_code=201, response_model=MessageOut)
async def post_message(dialog_id: UUID, body: MessageIn, request: Request,
                       background: BackgroundTasks,
                       claims: dict = Depends(current_user)) -> dict:
    """Write a message into a dialog the caller may see (an admin writes as operator)."""
    async with as_user(claims) as conn:
        dialog = await visible_dialog(conn, dialog_id)
        role = "user" if str(dialog["owner_id"]) == claims["sub"] else "operator"
        cursor = await conn.execute(
            "insert into chat_messages (dialog_id, owner_id, role, content)"
            f" values (%s, %s, %s, %s) returning {MESSAGE_COLUMNS}",
            (dialog_id, dialog["owner_id"], role, body.content))
        message = await cursor.fetchone()
    assert message is not None
    if role == "user":
        hooks: list[MessageHook] = getattr(request.app.state, "on_user_message", [])
        for hook in hooks:
            background.add_task(hook, claims, message)
    return message
