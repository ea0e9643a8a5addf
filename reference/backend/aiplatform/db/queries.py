"""Single-row reads and writes as the requesting user, with the API's 404."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from aiplatform.db.session import as_user


async def one_as_user(claims: dict[str, Any], sql: str, params: tuple[Any, ...],
                      missing: str) -> dict[str, Any]:
    """The row ``sql`` returns when run as the caller, or 404 ``missing``.

    Under RLS another user's row is simply not there, so "absent" and "not
    yours" answer the same 404 on purpose: ids cannot be probed.
    """
    async with as_user(claims) as conn:
        row = await (await conn.execute(sql, params)).fetchone()
    if row is None:
        raise HTTPException(404, missing)
    return dict(row)
