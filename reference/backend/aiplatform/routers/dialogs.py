"""/api/projects and /api/dialogs: the caller's projects and dialogs, paginated.

Every query runs as the caller (as_user): the WHERE clauses below only pick
what the caller asked for, RLS decides what the caller may see. A guessed id
of someone else's row therefore reads as 404, exactly like a missing one.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Response
from psycopg import AsyncConnection

from aiplatform.auth.deps import current_user
from aiplatform.db import as_user
from aiplatform.db.deps import require_database
from aiplatform.schemas import (
    DialogIn,
    DialogOut,
    DialogPatch,
    Limit,
    Offset,
    Page,
    ProjectIn,
    ProjectOut,
    page,
)

router = APIRouter(tags=["dialogs"], dependencies=[Depends(require_database)])

DIALOG_COLUMNS = "id, owner_id, project_id, title, channel, created_at"


@router.get("/api/projects", response_model=Page[ProjectOut])
async def list_projects(limit: Limit = 20, offset: Offset = 0,
                        claims: dict = Depends(current_user)) -> dict:
    """The caller's projects (an admin's: everyone's), newest first."""
    async with as_user(claims) as conn:
        cursor = await conn.execute(
            "select id, owner_id, name, created_at from projects"
            " order by created_at desc, id desc limit %s offset %s", (limit + 1, offset))
        return page(await cursor.fetchall(), limit, offset)


@router.post("/api/projects", status_code=201, response_model=ProjectOut)
async def create_project(body: ProjectIn, claims: dict = Depends(current_user)) -> dict:
    """A new project owned by the caller."""
    async with as_user(claims) as conn:
        cursor = await conn.execute(
            "insert into projects (owner_id, name) values (auth.uid(), %s)"
            " returning id, owner_id, name, created_at", (body.name,))
        return await cursor.fetchone()  # type: ignore[return-value]


async def visible_dialog(conn: AsyncConnection[Any], dialog_id: UUID) -> dict[str, Any]:
    """The dialog if the caller may see it, else 404 (never 403: that would confirm it exists)."""
    cursor = await conn.execute(f"select {DIALOG_COLUMNS} from dialogs where id = %s",
                                (dialog_id,))
    dialog = await cursor.fetchone()
    if dialog is None:
        raise HTTPException(404, "dialog not found")
    return dialog


@router.get("/api/dialogs", response_model=Page[DialogOut])
async def list_dialogs(project_id: UUID | None = None, limit: Limit = 20, offset: Offset = 0,
                       claims: dict = Depends(current_user)) -> dict:
    """The caller's dialogs, newest first, optionally of one project."""
    async with as_user(claims) as conn:
        cursor = await conn.execute(
            f"select {DIALOG_COLUMNS} from dialogs"
            " where (%(project)s::uuid is null or project_id = %(project)s::uuid)"
            " order by created_at desc, id desc limit %(limit)s offset %(offset)s",
            {"project": project_id, "limit": limit + 1, "offset": offset})
        return page(await cursor.fetchall(), limit, offset)


@router.post("/api/dialogs", status_code=201, response_model=DialogOut)
async def create_dialog(body: DialogIn, claims: dict = Depends(current_user)) -> dict:
    """A new dialog in a project the caller may see; it belongs to the project's owner."""
    async with as_user(claims) as conn:
        cursor = await conn.execute("select owner_id from projects where id = %s",
                                    (body.project_id,))
        project = await cursor.fetchone()
        if project is None:
            raise HTTPException(404, "project not found")
        cursor = await conn.execute(
            "insert into dialogs (owner_id, project_id, title) values (%s, %s, %s)"
            f" returning {DIALOG_COLUMNS}", (project["owner_id"], body.project_id, body.title))
        return await cursor.fetchone()  # type: ignore[return-value]


@router.get("/api/dialogs/{dialog_id}", response_model=DialogOut)
async def get_dialog(dialog_id: UUID, claims: dict = Depends(current_user)) -> dict:
    """One dialog."""
    async with as_user(claims) as conn:
        return await visible_dialog(conn, dialog_id)


@router.patch("/api/dialogs/{dialog_id}", response_model=DialogOut)
async def update_dialog(dialog_id: UUID, body: DialogPatch,
                        claims: dict = Depends(current_user)) -> dict:
    """Rename a dialog."""
    async with as_user(claims) as conn:
        cursor = await conn.execute(
            f"update dialogs set title = %s where id = %s returning {DIALOG_COLUMNS}",
            (body.title, dialog_id))
        dialog = await cursor.fetchone()
    if dialog is None:
        raise HTTPException(404, "dialog not found")
    return dialog


@router.delete("/api/dialogs/{dialog_id}", status_code=204)
async def delete_dialog(dialog_id: UUID, claims: dict = Depends(current_user)) -> Response:
    """Delete a dialog and its messages."""
    async with as_user(claims) as conn:
        cursor = await conn.execute("delete from dialogs where id = %s", (dialog_id,))
        if cursor.rowcount == 0:
            raise HTTPException(404, "dialog not found")
    return Response(status_code=204)
