"""/api/telegram/bot/webhook on a real PostgreSQL against a fake Bot API on loopback."""

# ruff: noqa: RUF001 - the Russian test texts are meant to be Cyrillic.
from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest
from backend_support import Api, User
from fakes.telegram import FakeTelegram

pytestmark = pytest.mark.anyio

SECRET = "webhook-secret-0123456789"
WEBHOOK = "/api/telegram/bot/webhook"
FAQ = "Магазин работает ежедневно с девяти до двадцати одного часа."


@pytest.fixture
def bot_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTelegram]:
    """The fake Bot API, with the backend's environment pointed at it."""
    with FakeTelegram() as fake:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)
        monkeypatch.setenv("TELEGRAM_API_BASE", fake.url)
        monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", SECRET)
        monkeypatch.delenv("GIGACHAT_AUTH_KEY", raising=False)
        yield fake


async def _bot_owner(api: Api, monkeypatch: pytest.MonkeyPatch) -> User:
    owner = await api.signup()
    await api.client.post("/api/knowledge/sources", headers=owner.headers, json={
        "project_id": owner.project_id, "title": "Часы работы", "content": FAQ})
    api.database.owner_execute(
        "insert into telegram_settings (owner_id, project_id, bot_username) values (%s, %s, 'b')",
        (owner.id, owner.project_id))
    # The session's database holds other tests' bots too: name this one.
    monkeypatch.setenv("TELEGRAM_PROJECT_ID", owner.project_id)
    return owner


def _update(chat_id: int, text: str | None = "Когда вы работаете?",
            update_id: int | None = None) -> dict:
    message: dict = {"message_id": random.randint(1, 10**6), "date": 0,
                     "chat": {"id": chat_id, "type": "private"},
                     "from": {"id": chat_id, "is_bot": False, "first_name": "Иван"}}
    if text is not None:
        message["text"] = text
    return {"update_id": update_id or random.randint(1, 2**40), "message": message}


def _hooked(secret: str = SECRET) -> dict[str, str]:
    return {"X-Telegram-Bot-Api-Secret-Token": secret}


def _updates_recorded(api: Api, update_id: int) -> int:
    ((count,),) = api.database.owner_execute(
        "select count(*) from telegram_updates where update_id = %s", (update_id,))
    return int(count)


async def test_a_wrong_or_missing_secret_is_rejected(
    api: Api, bot_api: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _bot_owner(api, monkeypatch)
    update = _update(5001)
    for headers in ({}, _hooked("wrong-secret"), _hooked(SECRET + "x"), _hooked("")):
        answer = await api.client.post(WEBHOOK, json=update, headers=headers)
        assert answer.status_code == 401, headers
    assert bot_api.sent == []
    assert _updates_recorded(api, update["update_id"]) == 0


async def test_without_a_configured_secret_the_webhook_refuses_everything(
    api: Api, bot_api: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET")
    answer = await api.client.post(WEBHOOK, json=_update(1), headers=_hooked(""))
    assert answer.status_code == 403
    assert bot_api.sent == []


async def test_an_update_is_answered_by_the_agent_with_send_message(
    api: Api, bot_api: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await _bot_owner(api, monkeypatch)
    answer = await api.client.post(WEBHOOK, json=_update(7001), headers=_hooked())
    assert answer.status_code == 200, answer.text
    [sent] = bot_api.sent_to(7001)
    assert "с девяти до двадцати одного часа" in sent.text
    dialog_id = answer.json()["dialog_id"]
    rows = api.database.owner_execute(
        "select d.channel, d.external_id, d.owner_id::text, m.role from dialogs d"
        " join chat_messages m on m.dialog_id = d.id where d.id = %s order by m.id", (dialog_id,))
    assert rows == [("telegram", "7001", owner.id, "user"), ("telegram", "7001", owner.id,
                                                             "assistant")]


async def test_a_replayed_update_is_processed_once(
    api: Api, bot_api: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _bot_owner(api, monkeypatch)
    update = _update(7002)
    first = await api.client.post(WEBHOOK, json=update, headers=_hooked())
    replay = await api.client.post(WEBHOOK, json=update, headers=_hooked())
    assert first.status_code == replay.status_code == 200
    assert replay.json()["duplicate"] is True
    assert len(bot_api.sent_to(7002)) == 1
    assert _updates_recorded(api, update["update_id"]) == 1


async def test_concurrent_deliveries_of_one_update_send_one_message(
    api: Api, bot_api: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _bot_owner(api, monkeypatch)
    update = _update(7003)
    answers = await asyncio.gather(*[
        api.client.post(WEBHOOK, json=update, headers=_hooked()) for _ in range(4)])
    assert [a.status_code for a in answers] == [200] * 4
    assert sum(1 for a in answers if a.json().get("duplicate")) == 3
    assert len(bot_api.sent_to(7003)) == 1


async def test_each_chat_maps_to_one_dialog(
    api: Api, bot_api: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await _bot_owner(api, monkeypatch)
    dialogs = []
    for chat_id in (8001, 8002, 8001):
        answer = await api.client.post(WEBHOOK, json=_update(chat_id), headers=_hooked())
        dialogs.append(answer.json()["dialog_id"])
    assert dialogs[0] == dialogs[2] != dialogs[1]
    listed = await api.client.get("/api/dialogs", headers=owner.headers,
                                  params={"project_id": owner.project_id})
    assert {dialogs[0], dialogs[1]} <= {d["id"] for d in listed.json()["items"]}
    ((count,),) = api.database.owner_execute(
        "select count(*) from chat_messages where dialog_id = %s", (dialogs[0],))
    assert count == 4  # two questions, two answers


async def test_a_failed_send_is_rolled_back_and_the_retry_is_answered(
    api: Api, bot_api: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _bot_owner(api, monkeypatch)
    update = _update(7004)
    real_token = bot_api.token
    bot_api.token = "0:rotated"  # the Bot API now refuses our token
    failed = await api.client.post(WEBHOOK, json=update, headers=_hooked())
    assert failed.status_code == 502
    assert _updates_recorded(api, update["update_id"]) == 0
    bot_api.token = real_token
    retried = await api.client.post(WEBHOOK, json=update, headers=_hooked())
    assert retried.status_code == 200 and "duplicate" not in retried.json()
    assert len(bot_api.sent_to(7004)) == 1


async def test_non_text_messages_and_bad_bodies(
    api: Api, bot_api: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _bot_owner(api, monkeypatch)
    photo = await api.client.post(WEBHOOK, json=_update(7005, text=None), headers=_hooked())
    assert photo.status_code == 200
    [sent] = bot_api.sent_to(7005)
    assert "текстовые" in sent.text
    bad = await api.client.post(WEBHOOK, json={"message": {}}, headers=_hooked())
    assert bad.status_code == 400
    edited = await api.client.post(WEBHOOK, json={"update_id": random.randint(1, 2**40),
                                                  "edited_message": {}}, headers=_hooked())
    assert edited.status_code == 200 and edited.json()["ignored"] == "not a message"


async def test_the_owner_sets_up_the_bot_and_nobody_else_can(
    api: Api, bot_api: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, stranger = await api.signup(), await api.signup()
    path = f"/api/telegram/settings/{owner.project_id}"
    assert (await api.client.get(path, headers=owner.headers)).status_code == 404
    put = await api.client.put(path, headers=owner.headers, json={"bot_username": "shop_bot"})
    assert put.status_code == 200 and put.json()["enabled"] is True
    assert (await api.client.get(path, headers=stranger.headers)).status_code == 404
    taken = await api.client.put(path, headers=stranger.headers, json={"enabled": False})
    assert taken.status_code == 404
    assert (await api.client.get(path, headers=owner.headers)).json()["enabled"] is True

    monkeypatch.setenv("TELEGRAM_PROJECT_ID", owner.project_id)
    answered = await api.client.post(WEBHOOK, json=_update(9001), headers=_hooked())
    assert "dialog_id" in answered.json()
    off = await api.client.put(path, headers=owner.headers, json={"enabled": False})
    assert off.json()["enabled"] is False
    ignored = await api.client.post(WEBHOOK, json=_update(9001), headers=_hooked())
    assert ignored.json()["ignored"] == "bot not configured"
    assert len(bot_api.sent_to(9001)) == 1
