"""/api/telegram/bot/webhook: the bot's updates, answered by the agent with sendMessage.

Telegram sends each update with the secret given to setWebhook in
X-Telegram-Bot-Api-Secret-Token; anything else is refused (401) before the
body is even parsed. A chat maps to one dialog per project (channel
'telegram', external_id = chat id).

Exactly once: the update id is inserted into telegram_updates (primary key) in
the same transaction that stores the message and is committed only after
sendMessage succeeded. A replay that arrives meanwhile waits on that key and
then finds it taken; a failure rolls everything back and Telegram's retry is
processed afresh.

Runs as service_role: Telegram is not a user of ours (no JWT, no auth.uid()),
telegram_updates has no policy at all, and the rows written belong to the
bot's project owner. Every statement is scoped by that project in code.
"""

from __future__ import annotations

import os
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import Field

from aiplatform import logs
from aiplatform.agent import agent_for
from aiplatform.agent.service import passages_for, store_message
from aiplatform.agent.store import project_owner
from aiplatform.auth.deps import current_user
from aiplatform.db import as_service, as_user
from aiplatform.db.deps import require_database
from aiplatform.db.queries import one_as_user
from aiplatform.schemas import Strict
from aiplatform.telegram import (
    SECRET_HEADER,
    TelegramApiError,
    UpdateError,
    bot_for,
    parse_update,
    secret_matches,
)

router = APIRouter(prefix="/api/telegram", tags=["telegram"],
                   dependencies=[Depends(require_database)])

Claims = Annotated[dict[str, Any], Depends(current_user)]
SETTINGS_COLUMNS = "project_id, owner_id, bot_username, enabled, created_at"

NOT_TEXT_REPLY = "Я понимаю только текстовые сообщения. / I can only read text messages."


async def _bot_project(conn: Any) -> dict[str, Any] | None:
    """The project this bot answers for: TELEGRAM_PROJECT_ID, else the oldest enabled one."""
    wanted = os.environ.get("TELEGRAM_PROJECT_ID") or None
    cursor = await conn.execute(
        "select project_id::text as project_id, owner_id::text as owner_id, settings"
        " from telegram_settings where enabled and (%s::uuid is null or project_id = %s::uuid)"
        " order by created_at, id limit 1", (wanted, wanted))
    return await cursor.fetchone()


async def _dialog_for_chat(conn: Any, project: dict[str, Any], chat_id: int, title: str) -> str:
    cursor = await conn.execute(
        "insert into dialogs (owner_id, project_id, title, channel, external_id)"
        " values (%s, %s, %s, 'telegram', %s)"
        " on conflict (project_id, channel, external_id) do update set title = dialogs.title"
        " returning id::text as id",
        (project["owner_id"], project["project_id"], title or f"Telegram {chat_id}",
         str(chat_id)))
    row = await cursor.fetchone()
    assert row is not None
    return row["id"]


@router.post("/bot/webhook")
async def webhook(request: Request) -> dict[str, Any]:
    """Process one update once; 401 without the right secret token."""
    expected = os.environ.get("TELEGRAM_WEBHOOK_SECRET", "")
    if not expected:
        # Refused like a wrong secret: without one, anyone could post updates.
        raise HTTPException(403, "telegram webhook not configured")
    if not secret_matches(request.headers.get(SECRET_HEADER), expected):
        raise HTTPException(401, "wrong or missing secret token")
    try:
        update = parse_update(await request.json())
    except (UpdateError, ValueError) as error:
        raise HTTPException(400, f"not a Telegram update: {error}") from None
    bot = bot_for(request.app.state)
    async with as_service() as conn:
        cursor = await conn.execute(
            "insert into telegram_updates (update_id) values (%s)"
            " on conflict (update_id) do nothing returning update_id", (update.update_id,))
        if await cursor.fetchone() is None:
            return {"ok": True, "update_id": update.update_id, "duplicate": True}
        message = update.message
        if message is None:
            return {"ok": True, "update_id": update.update_id, "ignored": "not a message"}
        project = await _bot_project(conn)
        if project is None or bot is None:
            # Acknowledged (Telegram would retry forever otherwise), but said in the log.
            logs.log("warning", event="telegram update not answered", update_id=update.update_id,
                     reason="no enabled telegram_settings" if project is None else "no bot token")
            return {"ok": True, "update_id": update.update_id, "ignored": "bot not configured"}
        dialog_id = await _dialog_for_chat(conn, project, message.chat_id, message.from_name)
        if message.text is None:
            reply_text = NOT_TEXT_REPLY
        else:
            await store_message(conn, dialog_id, project["owner_id"], "user", message.text)
            passages = await passages_for(conn, project["project_id"], message.text)
            answer = await agent_for(request.app.state).answer(message.text, passages)
            reply_text = answer.text
            await store_message(conn, dialog_id, project["owner_id"], "assistant", reply_text)
        try:
            await bot.send_message(message.chat_id, reply_text,
                                   reply_to_message_id=message.message_id)
        except TelegramApiError as error:
            # Roll back (the update id too): Telegram retries a non-2xx answer.
            logs.log("error", event="telegram sendMessage failed", update_id=update.update_id,
                     error=str(error))
            raise HTTPException(502, "sendMessage failed") from None
    return {"ok": True, "update_id": update.update_id, "dialog_id": dialog_id}


class TelegramSettingsIn(Strict):
    """Whether the bot answers for a project."""

    enabled: bool = True
    bot_username: str = Field("", max_length=64)


@router.get("/settings/{project_id}")
async def get_settings(project_id: UUID, claims: Claims) -> dict[str, Any]:
    """A project's bot settings (404 when none, or not the caller's project)."""
    return await one_as_user(
        claims, f"select {SETTINGS_COLUMNS} from telegram_settings where project_id = %s",
        (project_id,), "telegram settings not found")


@router.put("/settings/{project_id}")
async def put_settings(project_id: UUID, body: TelegramSettingsIn,
                       claims: Claims) -> dict[str, Any]:
    """Create or change a project's bot settings, as the project's owner (RLS)."""
    async with as_user(claims) as conn:
        owner = await project_owner(conn, str(project_id))
        if owner is None:
            raise HTTPException(404, "project not found")
        cursor = await conn.execute(
            "insert into telegram_settings (owner_id, project_id, bot_username, enabled)"
            " values (%s, %s, %s, %s) on conflict (project_id) do update"
            " set bot_username = excluded.bot_username, enabled = excluded.enabled"
            f" returning {SETTINGS_COLUMNS}",
            (owner, project_id, body.bot_username, body.enabled))
        return await cursor.fetchone()  # type: ignore[return-value]
