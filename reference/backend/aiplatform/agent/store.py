"""Writing knowledge sources and their chunks, and the agent's shared lookups.

Every function runs on the caller's connection (inside `as_user` or
`as_service`), so the same code is subject to RLS for users and scoped by its
explicit filters for the server-side paths.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from .chunking import split_text

MAX_SOURCE_CHARS = 200_000


async def add_source(
    conn: AsyncConnection[Any], owner_id: str, project_id: str, title: str, content: str
) -> dict[str, Any]:
    """Insert a source and its chunks; the new source row with its chunk count."""
    cursor = await conn.execute(
        "insert into knowledge_sources (owner_id, project_id, title, content) "
        "values (%s, %s, %s, %s) "
        "returning id::text as id, project_id::text as project_id, title, created_at",
        (owner_id, project_id, title, content),
    )
    source = await cursor.fetchone()
    assert source is not None
    chunks = split_text(content)
    async with conn.cursor() as cur:
        await cur.executemany(
            "insert into knowledge_chunks (source_id, owner_id, project_id, ordinal, content) "
            "values (%s, %s, %s, %s, %s)",
            [(source["id"], owner_id, project_id, i, chunk) for i, chunk in enumerate(chunks)],
        )
    return {**source, "chunks": len(chunks), "chars": len(content)}


async def project_owner(conn: AsyncConnection[Any], project_id: str) -> str | None:
    """The owner of `project_id` if the connection may see that project, else None."""
    cursor = await conn.execute(
        "select owner_id::text as owner_id from projects where id = %s", (project_id,)
    )
    row = await cursor.fetchone()
    return row["owner_id"] if row else None
