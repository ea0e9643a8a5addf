"""The WebSocket: hello/ping/echo for anyone, pushes under RLS for a token holder, and a
message posted through one instance reaching a client of another (LISTEN/NOTIFY)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from aiplatform.auth.tokens import issue_access_token
from backend_support import JWT_SECRET, PASSWORD, Database, Server, uvicorn_server
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.timeout(120)
WAIT_S = 10


@pytest.fixture(scope="module")
def two_instances(database: Database, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[tuple[Server, Server]]:
    """Two uvicorn processes on two loopback ports, one database (as two PM2 instances)."""
    folder = tmp_path_factory.mktemp("instances")
    with uvicorn_server(folder, database.urls.app) as a, \
            uvicorn_server(folder, database.urls.app) as b:
        yield a, b


def _signup(server: Server, database: Database, admin: bool = False) -> dict[str, Any]:
    email = f"ws-{time.monotonic_ns()}@example.test"
    answer = httpx.post(server.url + "/api/auth/signup",
                        json={"email": email, "password": PASSWORD}, timeout=10)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    if admin:
        database.owner_execute("update users set is_admin = true where id = %s",
                               (body["user"]["id"],))
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    project = httpx.get(server.url + "/api/projects", headers=headers).json()["items"][0]
    return {"id": body["user"]["id"], "token": body["access_token"], "headers": headers,
            "project_id": project["id"]}


def _dialog(server: Server, user: dict[str, Any]) -> str:
    answer = httpx.post(server.url + "/api/dialogs", headers=user["headers"],
                        json={"project_id": user["project_id"]})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _post(server: Server, user: dict[str, Any], dialog_id: str, text: str) -> dict[str, Any]:
    answer = httpx.post(f"{server.url}/api/chat/{dialog_id}/messages",
                        headers=user["headers"], json={"content": text})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


@contextmanager
def _open(server: Server, token: str | None = None, *, by_message: bool = False
          ) -> Iterator[ClientConnection]:
    """A client past the hello (and authenticated, with a token)."""
    query = f"?token={token}" if token and not by_message else ""
    with connect(f"ws://127.0.0.1:{server.port}/ws{query}", open_timeout=WAIT_S) as ws:
        hello = json.loads(ws.recv(timeout=WAIT_S))
        assert hello["type"] == "hello" and hello["instance"] == f"test-{server.port}"
        if token:
            if by_message:
                ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(ws.recv(timeout=WAIT_S))["type"] == "auth_ok"
        yield ws


def _next_message(ws: ClientConnection) -> dict[str, Any]:
    event = json.loads(ws.recv(timeout=WAIT_S))
    assert event["type"] == "message", event
    return dict(event["message"])


def test_a_message_posted_through_a_reaches_clients_of_b_and_only_those_who_may_see_it(
        two_instances: tuple[Server, Server], database: Database) -> None:
    a, b = two_instances
    alice, bob = _signup(a, database), _signup(a, database)
    admin = _signup(a, database, admin=True)
    alice_dialog, bob_dialog = _dialog(a, alice), _dialog(a, bob)
    with _open(b, alice["token"]) as alice_ws, \
            _open(b, bob["token"], by_message=True) as bob_ws, \
            _open(b, admin["token"]) as admin_ws:
        started = time.monotonic()
        posted = _post(a, alice, alice_dialog, "hello from instance A")
        received = _next_message(alice_ws)
        latency = time.monotonic() - started
        assert received == posted
        assert _next_message(admin_ws)["id"] == posted["id"]
        # Bob's next message is his own: alice's never reached him.
        bob_posted = _post(a, bob, bob_dialog, "bob's own")
        assert _next_message(bob_ws)["id"] == bob_posted["id"]
        assert _next_message(admin_ws)["id"] == bob_posted["id"]
        with pytest.raises(TimeoutError):
            alice_ws.recv(timeout=0.5)  # and bob's never reached alice
    assert latency < 5


def test_unauthenticated_clients_get_ping_and_echo(two_instances: tuple[Server, Server]) -> None:
    a, _ = two_instances
    for path in ("/ws", "/ws/chat"):
        with connect(f"ws://127.0.0.1:{a.port}{path}", open_timeout=WAIT_S) as ws:
            assert json.loads(ws.recv(timeout=WAIT_S))["type"] == "hello"
            ws.send('{"type":"ping"}')
            assert json.loads(ws.recv(timeout=WAIT_S)) == {"type": "pong"}
            for text in ("ping", '{"type":"message","text":"hi"}', "юникод ✓"):
                ws.send(text)
                assert ws.recv(timeout=WAIT_S) == text
            ws.send(b"\x00\xff")
            assert ws.recv(timeout=WAIT_S) == b"\x00\xff"


def _close_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        for _ in range(5):
            ws.recv(timeout=WAIT_S)
    return closed.value.rcvd.code if closed.value.rcvd else None


@pytest.mark.parametrize("how", ["query", "message"])
def test_bad_tokens_close_with_4401(two_instances: tuple[Server, Server], how: str) -> None:
    a, _ = two_instances
    forged = issue_access_token("not-the-secret-but-as-long-as-it-is", "00000000-0000-0000-0000"
                                "-000000000000", "x@example.test", 600)
    expired = issue_access_token(JWT_SECRET, "00000000-0000-0000-0000-000000000000",
                                 "x@example.test", 60, now=time.time() - 3600)
    for token in (forged, expired, "garbage"):
        query = f"?token={token}" if how == "query" else ""
        with connect(f"ws://127.0.0.1:{a.port}/ws{query}", open_timeout=WAIT_S) as ws:
            assert json.loads(ws.recv(timeout=WAIT_S))["type"] == "hello"
            if how == "message":
                ws.send(json.dumps({"type": "auth", "token": token}))
            assert _close_code(ws) == 4401


def test_a_token_expiring_mid_connection_closes_it(
        two_instances: tuple[Server, Server], database: Database) -> None:
    a, _ = two_instances
    user = _signup(a, database)
    short = issue_access_token(JWT_SECRET, user["id"], "x@example.test", 2)
    with _open(a, short) as ws:
        started = time.monotonic()
        assert _close_code(ws) == 4401
        assert time.monotonic() - started < 5


def test_pushes_arrive_in_the_order_messages_were_written(
        two_instances: tuple[Server, Server], database: Database) -> None:
    a, b = two_instances
    user = _signup(a, database)
    dialog = _dialog(a, user)
    with _open(b, user["token"]) as ws:
        # Alternating instances, back to back: commit order is the only order.
        posted = [_post((a, b)[i % 2], user, dialog, f"m{i}")["id"] for i in range(12)]
        assert [_next_message(ws)["id"] for _ in posted] == posted
