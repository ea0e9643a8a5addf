"""The service around the API: health with a database, without one and with a dead one,
request ids and JSON log lines, body limits."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from backend_support import Api, Database, make_api, uvicorn_server

pytestmark = pytest.mark.anyio


async def test_health_reports_the_database_and_migrations(api: Api) -> None:
    answer = await api.client.get("/api/health")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ok" and body["version"]
    assert body["database"]["status"] == "ok"
    assert 0 < body["database"]["latency_ms"] < 1000
    assert body["migrations"] == {"pending": 0}
    assert body["config"]["DATABASE_URL"] is True
    assert "app-pw-2" not in answer.text


async def test_a_dead_database_fails_health_without_leaking_the_dsn(database: Database) -> None:
    dead = "postgresql://ai_app:app-pw-2@127.0.0.1:1/aiplatform_test"
    async with make_api(database, database_url=dead, pool_timeout_s=1.0) as api:
        answer = await api.client.get("/api/health")
        assert answer.status_code == 503
        body = answer.json()
        assert body["status"] == "failing"
        assert body["database"]["status"] == "unreachable" and body["database"]["error"]
        assert "app-pw-2" not in answer.text
        user = await api.client.get("/api/dialogs", headers={"Authorization": "Bearer x"})
        assert user.status_code == 401  # the token is checked before the database is needed
        login = await api.client.post("/api/auth/login",
                                      json={"email": "a@b.cd", "password": "12345678"})
        assert (login.status_code, login.json()) == (503, {"error": "database unavailable"})


async def test_without_database_url_health_is_ok_and_data_endpoints_503(
        database: Database) -> None:
    async with make_api(database, database_url=None) as api:
        health = await api.client.get("/api/health")
        assert health.status_code == 200
        assert health.json()["database"] == {"status": "not configured"}
        signup = await api.client.post("/api/auth/signup",
                                       json={"email": "a@b.cd", "password": "12345678"})
        assert (signup.status_code, signup.json()) == (503, {"error": "database not configured"})
        for path in ("/api/dialogs", "/api/projects", "/api/auth/me",
                     "/api/chat/00000000-0000-0000-0000-000000000000/messages"):
            # Without a token too: the missing database is the answer, not the token.
            answer = await api.client.get(path)
            assert (answer.status_code, answer.json()) == (
                503, {"error": "database not configured"}), path
        assert (await api.client.get("/api/auth/ping")).status_code == 200


async def test_bodies_over_the_limit_get_413(api: Api) -> None:
    user = await api.signup()
    huge = json.dumps({"content": "x" * (1024 * 1024 + 10)})
    for path in ("/api/echo", f"/api/chat/{user.project_id}/messages"):
        answer = await api.client.post(path, content=huge, headers={
            **user.headers, "content-type": "application/json"})
        assert answer.status_code == 413, path
        assert answer.json()["error"] == "body too large"


async def test_request_ids_are_echoed_or_made(api: Api) -> None:
    given = await api.client.get("/api/version", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await api.client.get("/api/version", headers={"X-Request-ID": "bad id!"})
    assert made.headers["x-request-id"] not in ("", "bad id!")
    assert len(made.headers["x-request-id"]) == 32


def test_one_json_log_line_per_request_without_the_query(
        database: Database, tmp_path: Path) -> None:
    with uvicorn_server(tmp_path, database.urls.app) as server:
        httpx.get(server.url + "/api/dialogs?token=secret-in-query",
                  headers={"X-Request-ID": "req-42"})
        # The line is written once the answer is sent: it may trail the answer a little.
        deadline = time.monotonic() + 5
        while True:
            lines = [json.loads(line) for line in server.log().splitlines()
                     if line.startswith("{") and '"req-42"' in line]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert len(lines) == 1, server.log()
    line = lines[0]
    assert set(line) >= {"ts", "level", "request_id", "method", "path", "status", "ms"}
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/dialogs", 401)
    assert "secret-in-query" not in server.log()


async def test_a_crash_is_a_json_500_with_the_request_id(api: Api) -> None:
    async def boom() -> None:
        raise RuntimeError("a bug")

    api.app.add_api_route("/api/boom", boom)
    # The app re-raises after answering (so uvicorn logs the traceback): keep the answer.
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://backend.test") as client:
        answer = await client.get("/api/boom", headers={"X-Request-ID": "crash-1"})
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error", "request_id": "crash-1"}
    assert answer.headers["x-request-id"] == "crash-1"
    assert "a bug" not in answer.text
