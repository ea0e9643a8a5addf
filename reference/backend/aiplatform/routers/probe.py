"""/api/probe/record: each request it receives becomes one row of probe_requests.

adapto's deploy benchmarks and tests POST unique ids through nginx while
instances restart, then compare the table with what the client saw: an id
stored twice was processed twice, a 2xx whose id is missing was lost.

Not an open write endpoint: only a caller with the environment's probe token
(ADAPTO_PROBE_TOKEN, sent as X-Adapto-Probe, as adapto's probes send it) is
served; without a configured token the route does not exist (404). The row is
written as service_role: the caller is a tool, not a user.
"""

from __future__ import annotations

import hmac
import os
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import Field

from aiplatform import config
from aiplatform.db import as_service
from aiplatform.db.deps import require_database
from aiplatform.schemas import Strict

TOKEN_ENV = "ADAPTO_PROBE_TOKEN"
TOKEN_HEADER = "X-Adapto-Probe"
MAX_PAYLOAD = 64 * 1024


def require_probe_token(
    token: Annotated[str | None, Header(alias=TOKEN_HEADER)] = None,
) -> None:
    """404 when no probe token is configured, 403 when the header does not match it."""
    expected = os.environ.get(TOKEN_ENV, "")
    if not expected:
        # Indistinguishable from a route that does not exist.
        raise HTTPException(404, "Not Found")
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(403, f"{TOKEN_HEADER} missing or wrong")


router = APIRouter(prefix="/api/probe", tags=["probe"],
                   dependencies=[Depends(require_probe_token), Depends(require_database)])


class Record(Strict):
    """One request to record: the caller's unique id and any text."""

    id: str = Field(min_length=1, max_length=200)
    payload: str = Field(default="", max_length=MAX_PAYLOAD)


@router.post("/record")
async def record(body: Record, request: Request) -> dict[str, Any]:
    """Store (id, port, pid, release, payload size, time); answer how often the id is stored.

    ``count`` above 1 means this id was processed more than once.
    """
    settings: config.Settings = request.app.state.settings
    async with as_service() as conn:
        # Insert and count in one statement: the count includes this row, and the
        # row is committed before the answer leaves (a 2xx is always stored).
        cursor = await conn.execute(
            "with new as (insert into probe_requests"
            " (request_id, port, pid, release, payload_bytes)"
            " values (%s, %s, %s, %s, %s) returning received_at)"
            " select (select received_at from new) as received_at,"
            " 1 + (select count(*) from probe_requests where request_id = %s) as count",
            (body.id, settings.port, os.getpid(), settings.release,
             len(body.payload.encode()), body.id))
        row = await cursor.fetchone()
    assert row is not None
    return {"id": body.id, "count": int(row["count"]), "port": settings.port,
            "pid": os.getpid(), "release": settings.release,
            "received_at": row["received_at"].isoformat()}
