"""A database restart: health says so while it is down, and afterwards the same
instance serves requests and WebSocket pushes again without being restarted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from backend_support import PASSWORD, migrate, uvicorn_server
from pg_cluster import provision, running_cluster
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(180)


def _wait_health(url: str, status: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(url + "/api/health", timeout=5)
        if answer.status_code == status and (
                status != 200 or answer.json().get("realtime", {}).get("listening")):
            return dict(answer.json())
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.2)


def test_the_instance_recovers_after_a_database_restart(tmp_path: Path) -> None:
    with running_cluster() as cluster:
        urls = provision(cluster, "restart_test", owner=("r_owner", "pw-owner"),
                         app=("r_app", "pw-app"))
        assert migrate(urls.owner).returncode == 0
        with uvicorn_server(tmp_path, urls.app) as server:
            signup = httpx.post(server.url + "/api/auth/signup",
                                json={"email": "r@example.test", "password": PASSWORD})
            token = signup.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            project = httpx.get(server.url + "/api/projects", headers=headers).json()
            dialog = httpx.post(server.url + "/api/dialogs", headers=headers,
                                json={"project_id": project["items"][0]["id"]}).json()

            cluster.stop()
            down = _wait_health(server.url, 503)
            assert down["database"]["status"] == "unreachable"
            assert "pw-app" not in json.dumps(down)
            assert httpx.get(server.url + "/api/dialogs", headers=headers,
                             timeout=15).status_code == 503

            cluster.start()
            up = _wait_health(server.url, 200)
            assert up["database"]["status"] == "ok"
            with connect(f"ws://127.0.0.1:{server.port}/ws?token={token}") as ws:
                assert json.loads(ws.recv(timeout=10))["type"] == "hello"
                assert json.loads(ws.recv(timeout=10))["type"] == "auth_ok"
                posted = httpx.post(f"{server.url}/api/chat/{dialog['id']}/messages",
                                    headers=headers, json={"content": "after the restart"})
                assert posted.status_code == 201, posted.text
                pushed = json.loads(ws.recv(timeout=10))
                assert pushed["message"]["content"] == "after the restart"
