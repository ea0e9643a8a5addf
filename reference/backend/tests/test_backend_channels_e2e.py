"""The widget and the Telegram bot through real uvicorn processes, as PM2 runs them.

The configuration comes from the process environment (TELEGRAM_*, no GIGACHAT_*),
the widget is called over HTTP with its Origin, and the owner's WebSocket on
the OTHER instance receives the visitor's and the bot's messages (LISTEN/NOTIFY).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from backend_support import PASSWORD, Database, Server, uvicorn_server
from fakes.telegram import FakeTelegram
from websockets.sync.client import connect

pytestmark = pytest.mark.timeout(120)
WAIT_S = 10
SECRET = "e2e-webhook-secret"
SHOP = "https://shop.example"
FAQ = "Самовывоз доступен из пункта выдачи на Ленинском проспекте ежедневно."


@pytest.fixture(scope="module")
def bot_api() -> Iterator[FakeTelegram]:
    """The fake Bot API the instances are configured with."""
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture(scope="module")
def instances(database: Database, bot_api: FakeTelegram, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[Server, Server]]:
    """Two instances with the Telegram settings in their environment."""
    folder = tmp_path_factory.mktemp("channels")
    env = {"TELEGRAM_BOT_TOKEN": bot_api.token, "TELEGRAM_API_BASE": bot_api.url,
           "TELEGRAM_WEBHOOK_SECRET": SECRET, "GIGACHAT_AUTH_KEY": ""}
    with uvicorn_server(folder, database.urls.app, **env) as a, \
            uvicorn_server(folder, database.urls.app, **env) as b:
        yield a, b


def _owner_with_bot(server: Server, database: Database) -> dict[str, Any]:
    email = f"ch-{time.monotonic_ns()}@example.test"
    body = httpx.post(server.url + "/api/auth/signup",
                      json={"email": email, "password": PASSWORD}, timeout=10).json()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    project = httpx.get(server.url + "/api/projects", headers=headers).json()["items"][0]["id"]
    added = httpx.post(server.url + "/api/knowledge/sources", headers=headers, json={
        "project_id": project, "title": "Самовывоз", "content": FAQ})
    assert added.status_code == 201, added.text
    # The instances answer for the oldest enabled bot project: make this one
    # the only enabled one (other modules' bots are switched off).
    database.owner_execute("update telegram_settings set enabled = false")
    database.owner_execute(
        "insert into telegram_settings (owner_id, project_id) values (%s, %s)",
        (body["user"]["id"], project))
    return {"token": body["access_token"], "headers": headers, "project_id": project}


def _messages(ws: Any, count: int) -> list[dict[str, Any]]:
    found = []
    while len(found) < count:
        event = json.loads(ws.recv(timeout=WAIT_S))
        if event["type"] == "message":
            found.append(event["message"])
    return found


def test_widget_and_bot_messages_reach_the_owners_websocket_on_the_other_instance(
    instances: tuple[Server, Server], database: Database, bot_api: FakeTelegram,
) -> None:
    a, b = instances
    owner = _owner_with_bot(a, database)
    widget = httpx.post(a.url + "/api/widget/settings", headers=owner["headers"], json={
        "project_id": owner["project_id"], "allowed_origins": [SHOP]}).json()
    base = f"{a.url}/api/widget/{widget['widget_id']}"

    with connect(f"ws://127.0.0.1:{b.port}/ws?token={owner['token']}",
                 open_timeout=WAIT_S) as ws:
        assert json.loads(ws.recv(timeout=WAIT_S))["type"] == "hello"
        assert json.loads(ws.recv(timeout=WAIT_S))["type"] == "auth_ok"

        preflight = httpx.options(f"{base}/dialogs", headers={
            "Origin": SHOP, "Access-Control-Request-Method": "POST"})
        assert preflight.headers["access-control-allow-origin"] == SHOP
        refused = httpx.options(f"{base}/dialogs", headers={
            "Origin": "https://other.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in refused.headers

        started = httpx.post(f"{base}/dialogs", headers={"Origin": SHOP}).json()
        sent = httpx.post(f"{base}/dialogs/{started['dialog_id']}/messages",
                          headers={"Origin": SHOP, "X-Widget-Token": started["visitor_token"]},
                          json={"text": "Где находится самовывоз?"})
        assert sent.status_code == 201, sent.text
        assert "Ленинском проспекте" in sent.json()["reply"]["content"]
        # Pushes may arrive out of order (each is read back on its own): order by id.
        pushed = sorted(_messages(ws, 2), key=lambda m: m["id"])
        assert [m["role"] for m in pushed] == ["user", "assistant"]
        assert {m["dialog_id"] for m in pushed} == {started["dialog_id"]}

        update = {"update_id": random.randint(1, 2**40), "message": {
            "message_id": 1, "date": 0, "text": "самовывоз где?",
            "chat": {"id": 424242, "type": "private"}, "from": {"id": 424242, "first_name": "Я"}}}
        hooked = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        answers = [httpx.post(f"{server.url}/api/telegram/bot/webhook", json=update,
                              headers=hooked, timeout=10) for server in (a, b)]
        assert [r.status_code for r in answers] == [200, 200]
        assert answers[1].json()["duplicate"] is True  # the retry hit the other instance
        [reply] = bot_api.sent_to(424242)
        assert "Ленинском проспекте" in reply.text
        bot_pushed = sorted(_messages(ws, 2), key=lambda m: m["id"])
        assert [m["role"] for m in bot_pushed] == ["user", "assistant"]

        wrong = httpx.post(f"{b.url}/api/telegram/bot/webhook", json=update,
                           headers={"X-Telegram-Bot-Api-Secret-Token": "nope"})
        assert wrong.status_code == 401

    # The token never reaches the instances' logs (httpx logs request URLs).
    for server in (a, b):
        assert bot_api.token not in server.log()
