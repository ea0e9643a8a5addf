"""The webhook `adapto telegram webhook set` registers reaches the backend through nginx.

One sandbox on this module's slot (127.0.0.121, with the environment's
PostgreSQL), the reference backend deployed with TELEGRAM_API_BASE at the fake
Bot API on loopback. `set` registers https://op.adapto.test:8521/api/telegram/
bot/webhook with the secret from the sandbox's secrets; the test then plays
Telegram: it POSTs an update to exactly that URL (over TLS, through nginx)
with the secret token the fake recorded, and the bot's answer comes back to
the fake as sendMessage. A wrong secret is refused and a replay is processed once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e_support import said, sandbox_marks
from tests.fake_telegram import FakeTelegram
from tests.operate_sandbox import SERVER_NAME, OpBox, Slot, deployed_sandbox

pytestmark = [pytest.mark.e2e, *sandbox_marks()]

SLOT = Slot("127.0.0.121", 2421, 8421, 8521, (3421, 3422))
TOKEN = "7309876543:AAE2e-Token_known4grep"
CHAT_ID = "424242"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeTelegram]:
    server = FakeTelegram(TOKEN, CHAT_ID).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, fake: FakeTelegram) -> Iterator[OpBox]:
    base = tmp_path_factory.mktemp("tg")
    # The token must be the fake's; `sandbox up` gives the webhook secret a random value.
    (base / ".adapto").mkdir()
    (base / ".adapto" / "secrets.env").write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\n")
    (base / ".adapto" / "secrets.env").chmod(0o600)

    def adjust(env: dict[str, Any]) -> None:
        env["secrets"]["names"] += ["TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"]
        env["telegram"] = {"api_base": fake.api_base}
        # The backend answers through the fake too: never the real Bot API.
        env["backend"]["env"]["TELEGRAM_API_BASE"] = fake.api_base

    with deployed_sandbox(base, SLOT, adjust=adjust) as deployed:
        yield deployed


def post_update(url: str, secret: str | None, update: dict[str, Any]) -> httpx.Response:
    """POST like Telegram does, to the registered URL, via the slot's address (no DNS)."""
    parts = urlsplit(url)
    assert parts.hostname == SERVER_NAME
    headers = {"Host": parts.netloc, "Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return httpx.post(f"https://{SLOT.address}:{parts.port}{parts.path}", headers=headers,
                      content=json.dumps(update), verify=False, timeout=30, trust_env=False)


def an_update(update_id: int, text: str) -> dict[str, Any]:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1764500000, "text": text,
        "chat": {"id": int(CHAT_ID), "type": "private"},
        "from": {"id": int(CHAT_ID), "is_bot": False, "first_name": "Ops"}}}


def enable_bot(box: OpBox) -> None:
    """Sign a user up through the API and turn the bot on for the project signup made."""
    api = httpx.Client(base_url=f"https://{SLOT.address}:{SLOT.https_port}",
                       headers={"Host": SERVER_NAME}, verify=False, timeout=30, trust_env=False)
    with api:
        signup = api.post("/api/auth/signup", json={"email": "bot-owner@adapto.test",
                                                    "password": "correct horse battery"})
        assert signup.status_code == 201, signup.text[:300]
        auth = {"Authorization": f"Bearer {signup.json()['access_token']}"}
        projects = api.get("/api/projects", headers=auth)
        project_id = projects.json()["items"][0]["id"]
        enabled = api.put(f"/api/telegram/settings/{project_id}", headers=auth,
                          json={"enabled": True, "bot_username": "adapto_test_bot"})
        assert enabled.status_code == 200, enabled.text[:300]


def test_registered_webhook_reaches_the_backend_through_nginx(
        box: OpBox, fake: FakeTelegram) -> None:
    done = box.cli("telegram", "webhook", "set", "--json", timeout=60)
    assert done.returncode == 0, said(done)
    assert TOKEN not in done.stdout + done.stderr
    url, secret = fake.webhook["url"], fake.webhook["secret_token"]
    assert url == f"https://{SERVER_NAME}:{SLOT.https_port}/api/telegram/bot/webhook"
    assert json.loads(done.stdout)["url"] == url and secret not in done.stdout

    info = box.cli("telegram", "webhook", "info", timeout=60)
    assert info.returncode == 0 and "warning" not in info.stdout, said(info)

    enable_bot(box)
    wrong = post_update(url, secret + "x", an_update(9001, "hello"))
    assert wrong.status_code == 401, wrong.text[:300]
    missing = post_update(url, None, an_update(9001, "hello"))
    assert missing.status_code == 401, missing.text[:300]
    assert fake.texts() == []

    accepted = post_update(url, secret, an_update(9001, "hello bot"))
    assert accepted.status_code == 200, accepted.text[:300]
    assert accepted.json()["ok"] is True and accepted.json().get("dialog_id")
    assert fake.wait_for(1, timeout=10), "the bot's answer never reached sendMessage"

    replay = post_update(url, secret, an_update(9001, "hello bot"))
    assert replay.status_code == 200 and replay.json().get("duplicate") is True
    assert len(fake.texts()) == 1


def test_delete_then_info_says_no_webhook(box: OpBox, fake: FakeTelegram) -> None:
    done = box.cli("telegram", "webhook", "delete", timeout=60)
    assert done.returncode == 0, said(done)
    info = box.cli("telegram", "webhook", "info", "--json", timeout=60)
    assert info.returncode == 0, said(info)
    assert json.loads(info.stdout)["url"] == "" and fake.webhook == {}
