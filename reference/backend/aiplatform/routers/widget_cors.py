"""Per-widget CORS for the public widget endpoints.

Only a widget's `allowed_origins` get Access-Control-Allow-Origin. A preflight
from any other origin is refused (403) without it, and a request carrying
another Origin is refused before it changes anything. Error answers to an
allowed origin carry the header too, so the widget's page can read why.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from aiplatform.db import as_service
from aiplatform.errors import field_errors

TOKEN_HEADER = "X-Widget-Token"
PREFLIGHT_METHODS = "GET, POST, OPTIONS"
PREFLIGHT_HEADERS = f"Content-Type, {TOKEN_HEADER}"
_ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:\d{1,5})?$")


def normalize_origin(value: str) -> str:
    """`scheme://host[:port]` lower-cased; ValueError for anything else (paths, `*`)."""
    origin = value.strip().lower().rstrip("/")
    if not _ORIGIN.match(origin):
        raise ValueError(f"not an origin (scheme://host[:port]): {value[:100]!r}")
    return origin


async def load_widget(widget_id: str) -> dict[str, Any] | None:
    """The widget's public row (service_role: the caller is anonymous), or None."""
    try:
        UUID(widget_id)
    except ValueError:
        return None
    async with as_service() as conn:
        cursor = await conn.execute(
            "select widget_id, owner_id, project_id, allowed_origins, settings"
            " from widget_development_settings where widget_id = %s", (widget_id,))
        return await cursor.fetchone()


def allowed(origin: str, row: dict[str, Any]) -> bool:
    """Whether `origin` is one of the widget's allowed origins."""
    try:
        return normalize_origin(origin) in row["allowed_origins"]
    except ValueError:
        return False


class WidgetAccess:
    """The widget a public request is for, and the CORS headers its answers carry."""

    def __init__(self, row: dict[str, Any], origin: str | None) -> None:
        self.row = row
        self.project_id = str(row["project_id"])
        self.owner_id = str(row["owner_id"])
        self.headers: dict[str, str] = {"Vary": "Origin"}
        if origin is not None:
            self.headers["Access-Control-Allow-Origin"] = origin

    def fail(self, status: int, detail: str) -> HTTPException:
        """An error answer the widget's page may still read."""
        return HTTPException(status, detail, headers=self.headers)


async def widget_access(widget_id: UUID, request: Request, response: Response) -> WidgetAccess:
    """The widget, if it exists and the request's Origin (when any) is allowed.

    A request without Origin is not a browser's cross-origin call (curl, a
    server): CORS does not apply to it, and the widget's data is public anyway.
    """
    row = await load_widget(str(widget_id))
    origin = request.headers.get("origin")
    if row is None:
        raise HTTPException(404, "widget not found", headers={"Vary": "Origin"})
    if origin is not None and not allowed(origin, row):
        raise HTTPException(403, "origin not allowed", headers={"Vary": "Origin"})
    access = WidgetAccess(row, origin)
    response.headers.update(access.headers)
    return access


async def preflight(widget_id: str, request: Request) -> Response:
    """The answer to a CORS preflight for one of the widget's paths."""
    origin = request.headers.get("origin")
    row = await load_widget(widget_id)
    if origin is None or row is None or not allowed(origin, row):
        # No Access-Control-Allow-Origin: the browser refuses the real request.
        return JSONResponse({"error": "origin not allowed"}, 403, headers={"Vary": "Origin"})
    return Response(status_code=204, headers={
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": PREFLIGHT_METHODS,
        "Access-Control-Allow-Headers": PREFLIGHT_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    })


class WidgetCorsRoute(APIRoute):
    """A public widget route whose 422 answers carry CORS headers for allowed origins.

    Validation runs before the route's dependencies, so the app-wide 422
    handler would answer without them and the page could not read which field
    was wrong.
    """

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        """The route's handler, with invalid input answered here."""
        handle = super().get_route_handler()

        async def with_cors(request: Request) -> Response:
            try:
                return await handle(request)
            except RequestValidationError as error:
                answer = JSONResponse(
                    {"error": "invalid input", "fields": field_errors(error)}, 422,
                    headers={"Vary": "Origin"})
                origin = request.headers.get("origin")
                row = await load_widget(str(request.path_params.get("widget_id", "")))
                if origin is not None and row is not None and allowed(origin, row):
                    answer.headers["Access-Control-Allow-Origin"] = origin
                return answer

        return with_cors
