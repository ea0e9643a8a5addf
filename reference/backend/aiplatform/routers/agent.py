"""/api/agent: ask a project's agent a question (as the project's owner, or an admin).

Retrieval runs as the requesting user, in its own short transaction; the
provider (possibly GigaChat over the network) is called after it commits, so
no pooled connection is held while a model thinks.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import Field

from aiplatform.agent import agent_for, retrieval
from aiplatform.agent.store import project_owner
from aiplatform.auth.deps import current_user
from aiplatform.db import as_user
from aiplatform.db.deps import require_database
from aiplatform.schemas import Strict

router = APIRouter(prefix="/api/agent", tags=["agent"],
                   dependencies=[Depends(require_database)])

Claims = Annotated[dict[str, Any], Depends(current_user)]


class Question(Strict):
    """A question for one project's knowledge base."""

    project_id: UUID
    question: str = Field(min_length=1, max_length=2000)
    limit: int = Field(default=5, ge=1, le=20)


@router.post("/ask")
async def ask(body: Question, claims: Claims, request: Request) -> dict[str, Any]:
    """The agent's answer with its sources and the passages it was given."""
    async with as_user(claims) as conn:
        if await project_owner(conn, str(body.project_id)) is None:
            raise HTTPException(404, "project not found")
        passages = await retrieval.search(conn, str(body.project_id), body.question, body.limit)
    answer = await agent_for(request.app.state).answer(body.question, passages)
    return {
        "answer": answer.as_dict(),
        "passages": [{"chunk_id": p.chunk_id, "source_id": p.source_id, "rank": p.rank}
                     for p in passages],
    }
