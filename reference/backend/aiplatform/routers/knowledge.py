"""/api/knowledge: a project's inline text sources, split into chunks for retrieval.

Everything runs as the requesting user (`as_user`): RLS decides which projects,
sources and chunks exist for them, so another user's ids answer 404.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import Field

from aiplatform.agent import retrieval
from aiplatform.agent.store import MAX_SOURCE_CHARS, add_source, project_owner
from aiplatform.auth.deps import current_user
from aiplatform.db import as_user
from aiplatform.db.deps import require_database
from aiplatform.db.queries import one_as_user
from aiplatform.schemas import Strict

router = APIRouter(prefix="/api/knowledge", tags=["knowledge"],
                   dependencies=[Depends(require_database)])

Claims = Annotated[dict[str, Any], Depends(current_user)]


class SourceIn(Strict):
    """A new inline text source."""

    project_id: UUID
    title: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1, max_length=MAX_SOURCE_CHARS)


_LIST = """
select s.id::text as id, s.project_id::text as project_id, s.title, s.created_at,
       length(s.content) as chars,
       (select count(*) from knowledge_chunks c where c.source_id = s.id) as chunks
  from knowledge_sources s
 where s.project_id = %(project_id)s
 order by s.created_at desc, s.id desc
 limit %(limit)s offset %(offset)s
"""


@router.post("/sources", status_code=201)
async def create_source(body: SourceIn, claims: Claims) -> dict[str, Any]:
    """Add a source to one of the caller's projects; it is chunked at once."""
    async with as_user(claims) as conn:
        if await project_owner(conn, str(body.project_id)) is None:
            raise HTTPException(404, "project not found")
        # owner_id is the caller: RLS's WITH CHECK refuses anything else anyway.
        return await add_source(conn, claims["sub"], str(body.project_id),
                                body.title.strip(), body.content)


@router.get("/sources")
async def list_sources(
    claims: Claims,
    project_id: UUID,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """The project's sources, newest first, paginated."""
    async with as_user(claims) as conn:
        cursor = await conn.execute(
            _LIST, {"project_id": str(project_id), "limit": limit, "offset": offset})
        items = await cursor.fetchall()
    return {"items": items, "limit": limit, "offset": offset}


@router.get("/sources/{source_id}")
async def get_source(source_id: UUID, claims: Claims) -> dict[str, Any]:
    """One source with its text."""
    return await one_as_user(
        claims,
        "select id::text as id, project_id::text as project_id, title, content, created_at "
        "from knowledge_sources where id = %s", (str(source_id),), "source not found")


@router.delete("/sources/{source_id}", status_code=204)
async def delete_source(source_id: UUID, claims: Claims) -> Response:
    """Delete a source and (by cascade) its chunks."""
    await one_as_user(claims, "delete from knowledge_sources where id = %s returning id",
                      (str(source_id),), "source not found")
    return Response(status_code=204)


@router.get("/search")
async def search(
    claims: Claims,
    project_id: UUID,
    q: Annotated[str, Query(min_length=1, max_length=1000)],
    limit: Annotated[int, Query(ge=1, le=20)] = 5,
) -> dict[str, Any]:
    """The chunks that best match `q`, ranked by full-text search."""
    async with as_user(claims) as conn:
        passages = await retrieval.search(conn, str(project_id), q, limit)
    return {"items": [
        {"chunk_id": p.chunk_id, "source_id": p.source_id, "title": p.title,
         "content": p.content, "rank": p.rank} for p in passages
    ]}
