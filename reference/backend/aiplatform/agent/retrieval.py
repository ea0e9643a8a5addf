"""Retrieval: a project's knowledge chunks ranked by PostgreSQL full-text search.

knowledge_chunks.tsv is `to_tsvector('simple', content)` (see 0002_tables.sql):
no stemming, one configuration for Russian and English alike. Inflection is
handled on the query side instead: each meaningful word of the question is cut
to its first letters (text.terms) and matched as a prefix (`доста:*` finds
"доставка", "доставки", "доставку"), the words OR-ed, so a chunk that matches
more of them ranks higher under ts_rank.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from .provider import Passage
from .text import terms

DEFAULT_LIMIT = 5
MAX_QUERY_TERMS = 16

_SEARCH = """
select c.id as chunk_id, c.source_id::text as source_id, s.title, c.content,
       ts_rank(c.tsv, q.query) as rank
  from knowledge_chunks c
  join knowledge_sources s on s.id = c.source_id,
       (select to_tsquery('simple', %(query)s) as query) q
 where c.project_id = %(project_id)s and c.tsv @@ q.query
 order by rank desc, c.source_id, c.ordinal
 limit %(limit)s
"""


def tsquery_for(question: str) -> str | None:
    """The OR-ed prefix tsquery for `question`, or None when it has no meaningful word."""
    unique = list(dict.fromkeys(terms(question)))[:MAX_QUERY_TERMS]
    if not unique:
        return None
    # terms() yields \\w+ only: no tsquery operator or quote can get in.
    return " | ".join(f"{term}:*" for term in unique)


async def search(
    conn: AsyncConnection[Any], project_id: str, question: str, limit: int = DEFAULT_LIMIT
) -> list[Passage]:
    """The project's chunks that best match `question`, best first.

    Runs on the caller's connection, so under `as_user` RLS limits it to the
    chunks that user may read; callers running as service_role rely on the
    project filter alone.
    """
    query = tsquery_for(question)
    if query is None:
        return []
    cursor = await conn.execute(
        _SEARCH, {"query": query, "project_id": project_id, "limit": limit}
    )
    return [
        Passage(
            chunk_id=row["chunk_id"],
            source_id=row["source_id"],
            title=row["title"],
            content=row["content"],
            rank=float(row["rank"]),
        )
        for row in await cursor.fetchall()
    ]
