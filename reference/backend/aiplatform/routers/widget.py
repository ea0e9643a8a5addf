"""/api/widget: the embeddable widget's public endpoints, and its owner's settings.

Public (no token), keyed by the widget's public id: its configuration, starting
a dialog, a visitor's messages and the agent's answers. CORS is decided per
widget: only its `allowed_origins` get Access-Control-Allow-Origin, a preflight
from any other origin is refused without it, and a request carrying another
Origin is refused before it changes anything.

The public paths run as service_role: the visitor is anonymous (no JWT, so no
auth.uid() for RLS to compare), and the rows it touches belong to the widget's
owner. Every statement is scoped in code instead: by the widget's project and
owner, and a visitor's dialog by the hash of the token only that visitor holds.
The owner's settings endpoints run as the owner (as_user), under RLS.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from psycopg.types.json import Jsonb
from pydantic import Field, field_validator

from aiplatform.agent import agent_for
from aiplatform.agent.service import passages_for, store_message
from aiplatform.agent.store import project_owner
from aiplatform.auth.deps import current_user
from aiplatform.db import as_service, as_user
from aiplatform.db.deps import require_database
from aiplatform.db.queries import one_as_user
from aiplatform.ratelimit import SlidingWindow, client_address
from aiplatform.routers.widget_cors import (
    TOKEN_HEADER,
    WidgetAccess,
    WidgetCorsRoute,
    normalize_origin,
    preflight,
    widget_access,
)
from aiplatform.schemas import Limit, Offset, Strict, page

router = APIRouter(prefix="/api/widget", tags=["widget"],
                   dependencies=[Depends(require_database)])
public = APIRouter(route_class=WidgetCorsRoute)

Claims = Annotated[dict[str, Any], Depends(current_user)]

MAX_ORIGINS = 20
MAX_SETTINGS_BYTES = 10_000
WIDGET_COLUMNS = (
    "id, widget_id, owner_id, project_id, allowed_origins, settings, created_at, updated_at"
)


def _check_origins(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return list(dict.fromkeys(normalize_origin(v) for v in values))


def _check_settings(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value)) > MAX_SETTINGS_BYTES:
        raise ValueError(f"settings are larger than {MAX_SETTINGS_BYTES} bytes")
    return value


class WidgetIn(Strict):
    """A new widget for one of the caller's projects."""

    project_id: UUID
    allowed_origins: list[str] = Field(default_factory=list, max_length=MAX_ORIGINS)
    # Public display settings (title, greeting, colours): the config endpoint
    # shows them to anyone, so nothing secret belongs here.
    settings: dict[str, Any] = Field(default_factory=dict)

    _origins = field_validator("allowed_origins")(_check_origins)
    _settings = field_validator("settings")(_check_settings)


class WidgetPatch(Strict):
    """A widget's editable fields; omitted ones stay as they are."""

    allowed_origins: list[str] | None = Field(default=None, max_length=MAX_ORIGINS)
    settings: dict[str, Any] | None = None

    _origins = field_validator("allowed_origins")(_check_origins)
    _settings = field_validator("settings")(_check_settings)


class VisitorMessage(Strict):
    """A visitor's message."""

    text: str = Field(min_length=1, max_length=4000)


# --- the owner's settings (authenticated, RLS) -------------------------------------------


@router.post("/settings", status_code=201)
async def create_widget(body: WidgetIn, claims: Claims) -> dict[str, Any]:
    """Create a widget for a project the caller may see."""
    async with as_user(claims) as conn:
        owner = await project_owner(conn, str(body.project_id))
        if owner is None:
            raise HTTPException(404, "project not found")
        # The widget belongs to the project's owner (an admin may set one up
        # for them): the public paths rely on widget owner == project owner.
        cursor = await conn.execute(
            "insert into widget_development_settings"
            " (owner_id, project_id, allowed_origins, settings)"
            f" values (%s, %s, %s, %s) returning {WIDGET_COLUMNS}",
            (owner, body.project_id, body.allowed_origins, Jsonb(body.settings)))
        return await cursor.fetchone()  # type: ignore[return-value]


@router.get("/settings")
async def list_widgets(claims: Claims, limit: Limit = 20, offset: Offset = 0) -> dict[str, Any]:
    """The caller's widgets (an admin's: everyone's), newest first."""
    async with as_user(claims) as conn:
        cursor = await conn.execute(
            f"select {WIDGET_COLUMNS} from widget_development_settings"
            " order by created_at desc, id desc limit %s offset %s", (limit + 1, offset))
        return page(await cursor.fetchall(), limit, offset)


@router.get("/settings/{widget_id}")
async def get_widget(widget_id: UUID, claims: Claims) -> dict[str, Any]:
    """One widget's settings; 404 for a widget that is not the caller's."""
    return await one_as_user(
        claims, f"select {WIDGET_COLUMNS} from widget_development_settings where widget_id = %s",
        (widget_id,), "widget not found")


@router.patch("/settings/{widget_id}")
async def update_widget(widget_id: UUID, body: WidgetPatch, claims: Claims) -> dict[str, Any]:
    """Change a widget's allowed origins and/or settings."""
    return await one_as_user(
        claims,
        "update widget_development_settings set"
        " allowed_origins = coalesce(%s, allowed_origins),"
        " settings = coalesce(%s, settings), updated_at = now()"
        f" where widget_id = %s returning {WIDGET_COLUMNS}",
        (body.allowed_origins, Jsonb(body.settings) if body.settings is not None else None,
         widget_id), "widget not found")


@router.delete("/settings/{widget_id}", status_code=204)
async def delete_widget(widget_id: UUID, claims: Claims) -> Response:
    """Delete a widget: its public endpoints answer 404 from then on."""
    await one_as_user(
        claims, "delete from widget_development_settings where widget_id = %s returning id",
        (widget_id,), "widget not found")
    return Response(status_code=204)


# --- public endpoints (keyed by widget id; CORS per widget in widget_cors.py) ------------


Widget = Annotated[WidgetAccess, Depends(widget_access)]


def _throttle(request: Request, access: WidgetAccess) -> None:
    """At most WIDGET_RATE_LIMIT (default 30) writes a minute per visitor address and widget.

    The public write paths cost a database write and possibly a paid model
    call each, and anyone on the internet can reach them.
    """
    state = request.app.state
    window: SlidingWindow | None = getattr(state, "widget_rate_limit", None)
    if window is None:
        limit = int(os.environ.get("WIDGET_RATE_LIMIT") or 30)
        window = state.widget_rate_limit = SlidingWindow(limit, 60)
    wait = window.hit(f"{access.row['widget_id']}:{client_address(request)}")
    if wait > 0:
        raise HTTPException(429, "too many requests",
                            headers={**access.headers, "Retry-After": str(max(1, round(wait)))})


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _visitor_dialog(conn: Any, access: WidgetAccess, dialog_id: UUID, token: str | None,
                          ) -> None:
    if not token:
        raise access.fail(401, f"{TOKEN_HEADER} header required")
    cursor = await conn.execute(
        "select 1 from dialogs where id = %s and project_id = %s and channel = 'widget'"
        " and external_id = %s", (dialog_id, access.project_id, _token_hash(token)))
    if await cursor.fetchone() is None:
        # Same answer for a wrong token and a missing dialog: no probing.
        raise access.fail(404, "dialog not found")


@public.get("/{widget_id}/config")
async def widget_config(access: Widget) -> dict[str, Any]:
    """The widget's public configuration."""
    return {"widget_id": access.row["widget_id"], "settings": access.row["settings"]}


@public.post("/{widget_id}/dialogs", status_code=201)
async def start_dialog(access: Widget, request: Request) -> dict[str, Any]:
    """Start a visitor's dialog; the token it returns authorizes its messages."""
    _throttle(request, access)
    token = secrets.token_urlsafe(32)
    async with as_service() as conn:
        cursor = await conn.execute(
            "insert into dialogs (owner_id, project_id, title, channel, external_id)"
            " values (%s, %s, 'Widget visitor', 'widget', %s) returning id, created_at",
            (access.owner_id, access.project_id, _token_hash(token)))
        dialog = await cursor.fetchone()
    assert dialog is not None
    greeting = (access.row["settings"] or {}).get("greeting")
    return {"dialog_id": dialog["id"], "visitor_token": token, "greeting": greeting}


@public.get("/{widget_id}/dialogs/{dialog_id}/messages")
async def visitor_messages(
    dialog_id: UUID, access: Widget,
    token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None,
    limit: Limit = 50, offset: Offset = 0,
) -> dict[str, Any]:
    """The visitor's dialog, oldest first."""
    async with as_service() as conn:
        await _visitor_dialog(conn, access, dialog_id, token)
        cursor = await conn.execute(
            "select id, role, content, created_at from chat_messages where dialog_id = %s"
            " order by id limit %s offset %s", (dialog_id, limit + 1, offset))
        return page(await cursor.fetchall(), limit, offset)


@public.post("/{widget_id}/dialogs/{dialog_id}/messages", status_code=201)
async def visitor_message(
    dialog_id: UUID, body: VisitorMessage, access: Widget, request: Request,
    token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None,
) -> dict[str, Any]:
    """Store the visitor's message and answer it with the agent."""
    _throttle(request, access)
    async with as_service() as conn:
        await _visitor_dialog(conn, access, dialog_id, token)
        message = await store_message(conn, str(dialog_id), access.owner_id, "user", body.text)
        passages = await passages_for(conn, access.project_id, body.text)
    answer = await agent_for(request.app.state).answer(body.text, passages)
    async with as_service() as conn:
        reply = await store_message(conn, str(dialog_id), access.owner_id, "assistant",
                                    answer.text)
    return {
        "message": {k: message[k] for k in ("id", "role", "content", "created_at")},
        "reply": {**{k: reply[k] for k in ("id", "role", "content", "created_at")},
                  "sources": [s.as_dict() for s in answer.sources],
                  "provider": answer.provider},
    }


@public.options("/{widget_id}", include_in_schema=False)
async def preflight_root(widget_id: str, request: Request) -> Response:
    """CORS preflight for the widget's root."""
    return await preflight(widget_id, request)


@public.options("/{widget_id}/{rest:path}", include_in_schema=False)
async def preflight_path(widget_id: str, rest: str, request: Request) -> Response:
    """CORS preflight for the widget's public paths."""
    return await preflight(widget_id, request)


# After the owner's /settings routes: "settings" would otherwise match {widget_id}.
router.include_router(public)
