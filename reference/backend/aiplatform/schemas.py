"""Request and response bodies shared by the routers (they also make the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

# Deliberately loose (one @, a dot in the domain, no spaces): the address is
# proven by use, not by a regex.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

Item = TypeVar("Item")


class Strict(BaseModel):
    """Unknown fields are an error, so a typo in a field name gets a 422 naming it."""

    model_config = ConfigDict(extra="forbid")


class Page(BaseModel, Generic[Item]):
    """One page of a list: ``next_offset`` is None on the last page."""

    items: list[Item]
    limit: int
    offset: int
    next_offset: int | None


Limit = Annotated[int, Query(ge=1, le=100, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="rows to skip")]


def page(rows: list[dict], limit: int, offset: int) -> dict:
    """A Page from ``limit + 1`` fetched rows (the extra one only says there is more)."""
    more = len(rows) > limit
    return {"items": rows[:limit], "limit": limit, "offset": offset,
            "next_offset": offset + limit if more else None}


class UserOut(BaseModel):
    """A user as the user (or an admin) sees it: never the password hash."""

    id: UUID
    email: str
    display_name: str
    is_admin: bool
    created_at: datetime


class ProjectIn(Strict):
    """A new project."""

    name: str = Field(min_length=1, max_length=200)


class ProjectOut(BaseModel):
    """A project."""

    id: UUID
    owner_id: UUID
    name: str
    created_at: datetime


class DialogIn(Strict):
    """A new dialog in one of the caller's projects."""

    project_id: UUID
    title: str = Field("", max_length=200)


class DialogPatch(Strict):
    """A dialog's editable fields."""

    title: str = Field(max_length=200)


class DialogOut(BaseModel):
    """A dialog."""

    id: UUID
    owner_id: UUID
    project_id: UUID
    title: str
    channel: str
    created_at: datetime


class MessageIn(Strict):
    """A message the caller writes into a dialog."""

    content: str = Field(min_length=1, max_length=10_000)


class MessageOut(BaseModel):
    """A message of a dialog."""

    id: int
    dialog_id: UUID
    owner_id: UUID
    role: str
    content: str
    created_at: datetime
