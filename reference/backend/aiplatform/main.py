"""create_app(): the FastAPI application, its middleware, routers and lifespan.

PM2 starts ``uvicorn app:app`` in reference/backend/; app.py re-exports ``app``.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from aiplatform import __version__, config, drain, errors, logs
from aiplatform.agent import agent_for, close_agent
from aiplatform.agent.service import web_chat_answerer
from aiplatform.db import pool
from aiplatform.middleware import RequestContext
from aiplatform.ratelimit import SlidingWindow
from aiplatform.realtime import ws
from aiplatform.realtime.fanout import Fanout
from aiplatform.routers import (
    agent,
    auth,
    chat,
    dialogs,
    health,
    knowledge,
    probe,
    telegram,
    widget,
)
from aiplatform.telegram import close_bot

# Tests and rehearsals make a release that never comes up by shipping this file.
if (config.APP_DIR / "CRASH_ON_START").exists():
    print("CRASH_ON_START is present: refusing to start", file=sys.stderr, flush=True)
    raise SystemExit(3)


def _quiet_uvicorn_access_log() -> None:
    # uvicorn's access line repeats ours in another format and includes the
    # query string, where a WebSocket token travels (/ws?token=...).
    logging.getLogger("uvicorn.access").disabled = True


def create_app(settings: config.Settings | None = None) -> FastAPI:
    """The application; ``settings`` default to the environment's."""
    settings = settings or config.load()
    _quiet_uvicorn_access_log()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.start(settings)
        fanout = Fanout(settings.database_url) if settings.database_url else None
        app.state.fanout = fanout
        if fanout is not None:
            await fanout.start()
        # Everything loaded so far (FastAPI, pydantic's schemas, the routes) lives as long
        # as the process: frozen out of the collector, a full collection no longer walks
        # it, which took tens of ms in the middle of a request (the p99 tail).
        gc.collect()
        gc.freeze()
        logs.log("info", event="started", release=settings.release,
                 instance=settings.instance or "-", database=settings.database_configured)
        try:
            yield
        finally:
            logs.log("info", event="stopping", release=settings.release,
                     instance=settings.instance or "-")
            if fanout is not None:
                await fanout.stop()
            await pool.stop()
            await close_agent(app.state)
            await close_bot(app.state)

    app = FastAPI(title="AI platform API", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.auth_rate_limit = SlidingWindow(settings.auth_rate_limit, settings.auth_rate_window_s)
    errors.install(app)
    # Run after each user message is committed (the agent registers its answerer here).
    app.state.on_user_message = [web_chat_answerer(lambda: agent_for(app.state))]
    app.state.fanout = None
    for router in (health.router, auth.router, dialogs.router, chat.router, ws.router,
                   knowledge.router, agent.router, widget.router, telegram.router, probe.router):
        app.include_router(router)
    app.add_middleware(RequestContext, max_body=settings.max_body)
    # Outermost: while the instance drains, every answer closes its connection.
    app.add_middleware(drain.CloseWhenDraining)
    return app


# Under uvicorn, SIGTERM/SIGINT drains before shutting down (aiplatform/drain.py).
drain.install()
app = create_app()
