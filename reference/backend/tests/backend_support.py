"""Helpers for the backend's tests: the app in-process, users, uvicorn processes.

A module of its own (not conftest.py) so test modules can import the helpers.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
from pg_cluster import Cluster, DatabaseUrls, free_port

BACKEND = Path(__file__).resolve().parent.parent
JWT_SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
PASSWORD = "correct horse battery"


@dataclass
class Database:
    """The session's database."""

    cluster: Cluster
    urls: DatabaseUrls

    def owner_execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` as the owner role (bypasses RLS: not forced); returns rows if any."""
        with psycopg.connect(self.urls.owner, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []


def migrate(owner_url: str | None, *args: str, cwd: Path = BACKEND,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m aiplatform.migrate`` as a deploy runs it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MIGRATION_DATABASE_URL", "DATABASE_URL", "MIGRATE_WITH_DATABASE_URL")}
    if owner_url:
        env["MIGRATION_DATABASE_URL"] = owner_url
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "aiplatform.migrate", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@dataclass
class User:
    """A signed-up user and its session."""

    id: str
    email: str
    token: str
    refresh_token: str
    project_id: str

    @property
    def headers(self) -> dict[str, str]:
        """The Authorization header."""
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Api:
    """The app running in-process, and a client for it."""

    app: Any
    client: httpx.AsyncClient
    database: Database

    async def signup(self, admin: bool = False) -> User:
        """A new user (with its first project); ``admin`` sets users.is_admin as the owner."""
        email = f"u-{uuid.uuid4().hex[:12]}@example.test"
        answer = await self.client.post("/api/auth/signup",
                                        json={"email": email, "password": PASSWORD})
        assert answer.status_code == 201, answer.text
        body = answer.json()
        user_id = body["user"]["id"]
        if admin:
            self.database.owner_execute("update users set is_admin = true where id = %s",
                                        (user_id,))
        projects = await self.client.get("/api/projects", headers={
            "Authorization": f"Bearer {body['access_token']}"})
        project_id = projects.json()["items"][0]["id"]
        return User(user_id, email, body["access_token"], body["refresh_token"], project_id)

    async def dialog(self, user: User, title: str = "d") -> dict[str, Any]:
        """A new dialog of ``user`` in its first project."""
        answer = await self.client.post("/api/dialogs", headers=user.headers,
                                        json={"project_id": user.project_id, "title": title})
        assert answer.status_code == 201, answer.text
        return answer.json()


def settings_for(database: Database, **changes: Any) -> Any:
    """Settings for the test database (rate limit high unless changed)."""
    from aiplatform import config

    base = config.load()
    values = {"database_url": database.urls.app, "jwt_secret": JWT_SECRET,
              "jwt_secret_generated": False, "auth_rate_limit": 10_000, **changes}
    return dataclasses.replace(base, **values)


@asynccontextmanager
async def make_api(database: Database, **changes: Any) -> AsyncIterator[Api]:
    """The app in-process with its lifespan running, and an httpx client on it."""
    from aiplatform.main import create_app

    app = create_app(settings_for(database, **changes))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend.test") as c:
            yield Api(app, c, database)


@dataclass
class Server:
    """A real uvicorn process serving the backend on a loopback port."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything it printed."""
        return self.log_path.read_text(errors="replace")


def server_env(database_url: str | None, port: int, **extra: str) -> dict[str, str]:
    """The environment PM2 would give an instance."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "ADAPTO_FAIL_HEALTH", "JWT_SECRET")}
    env.update({"PORT": str(port), "ADAPTO_INSTANCE": f"test-{port}", "JWT_SECRET": JWT_SECRET,
                "AUTH_RATE_LIMIT": "10000", **extra})
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


@contextmanager
def uvicorn_server(tmp_path: Path, database_url: str | None, **extra: str) -> Iterator[Server]:
    """``uvicorn app:app`` from reference/backend, as PM2 starts it; healthy and listening."""
    port = free_port()
    log_path = tmp_path / f"uvicorn-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", f"--port={port}"],
            cwd=BACKEND, env=server_env(database_url, port, **extra),
            stdout=log, stderr=subprocess.STDOUT)
    server = Server(proc, port, log_path)
    try:
        _wait_ready(server, realtime=bool(database_url))
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_ready(server: Server, realtime: bool) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"uvicorn exited {server.proc.returncode}:\n{server.log()}")
        try:
            body = httpx.get(server.url + "/api/health", timeout=2).json()
            if not realtime or body.get("realtime", {}).get("listening"):
                return
        except (httpx.TransportError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"uvicorn not ready within 20 s:\n{server.log()}")
