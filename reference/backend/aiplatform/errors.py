"""Every error answer is JSON ``{"error": ...}``; 422 names the fields."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg import errors as pg_errors
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException

from aiplatform import logs
from aiplatform.db import DatabaseNotConfigured


def _field_name(location: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "email") -> "email"; ("query", "limit") -> "limit";
    # ("body", "items", 0, "name") -> "items.0.name"
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def field_errors(error: RequestValidationError) -> dict[str, str]:
    """field -> message, the first message per field."""
    fields: dict[str, str] = {}
    for item in error.errors():
        fields.setdefault(_field_name(item.get("loc", ())), str(item.get("msg", "invalid")))
    return fields


def install(app: FastAPI) -> None:
    """Register the JSON error handlers on ``app``."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 404 and error.detail == "Not Found":
            body: dict[str, Any] = {"error": "not found", "path": request.url.path}
        elif error.status_code == 405:
            allowed = (error.headers or {}).get("Allow", "")
            body = {"error": "method not allowed",
                    "allowed": [m.strip() for m in allowed.split(",") if m.strip()]}
        else:
            body = {"error": error.detail}
        return JSONResponse(body, error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": "invalid input", "fields": field_errors(error)}, 422)

    @app.exception_handler(DatabaseNotConfigured)
    async def no_database(request: Request, error: DatabaseNotConfigured) -> JSONResponse:
        return JSONResponse({"error": "database not configured"}, 503)

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def database_down(request: Request, error: Exception) -> JSONResponse:
        logs.log("error", event="database unavailable", error=type(error).__name__)
        return JSONResponse({"error": "database unavailable"}, 503)

    @app.exception_handler(pg_errors.InsufficientPrivilege)
    async def refused(request: Request, error: Exception) -> JSONResponse:
        # A write that RLS refused: the API checks first, so this means a policy
        # caught what the code let through. Logged: it deserves a look.
        logs.log("warning", event="refused by the database", error=type(error).__name__)
        return JSONResponse({"error": "forbidden"}, 403)

    @app.exception_handler(pg_errors.IntegrityError)
    async def conflict(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": "conflict", "reason": type(error).__name__}, 409)

    @app.exception_handler(Exception)
    async def crashed(request: Request, error: Exception) -> JSONResponse:
        # Starlette answers this outside every middleware (and then re-raises,
        # so uvicorn logs the traceback): the id comes from the scope's state,
        # where RequestContext put it, and the header is set here.
        request_id = str(getattr(request.state, "request_id", "-"))
        return JSONResponse({"error": "internal error", "request_id": request_id}, 500,
                            headers={"X-Request-ID": request_id})

    @app.exception_handler(pg_errors.DataError)
    async def bad_data(request: Request, error: Exception) -> JSONResponse:
        return JSONResponse({"error": "invalid input", "reason": type(error).__name__}, 422)
