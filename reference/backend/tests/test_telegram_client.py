"""The Bot API client against a fake Bot API on loopback; update parsing; the secret check."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest
from aiplatform.telegram import (
    BotApiClient,
    TelegramApiError,
    UpdateError,
    parse_update,
    redact,
    secret_matches,
)
from aiplatform.telegram.client import MAX_MESSAGE_CHARS
from fakes.telegram import FakeTelegram


@pytest.fixture
def bot_api() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


def _send(client: BotApiClient, chat_id: int, text: str) -> dict[str, object]:
    async def go() -> dict[str, object]:
        try:
            return await client.send_message(chat_id, text, reply_to_message_id=7)
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_send_message_reaches_the_configured_api_base(bot_api: FakeTelegram) -> None:
    client = BotApiClient.from_env(
        {"TELEGRAM_BOT_TOKEN": bot_api.token, "TELEGRAM_API_BASE": bot_api.url + "/"}
    )
    assert client is not None
    sent = _send(client, 42, "привет")
    assert sent["text"] == "привет"
    [call] = bot_api.sent_to(42)
    assert call.text == "привет"
    assert call.payload["reply_parameters"]["message_id"] == 7


def test_a_long_text_is_cut_to_the_bot_api_limit(bot_api: FakeTelegram) -> None:
    _send(BotApiClient(bot_api.token, bot_api.url), 1, "я" * 5000)
    [call] = bot_api.sent
    assert len(call.text) == MAX_MESSAGE_CHARS and call.text.endswith("…")


def test_a_refused_call_raises_without_the_token(
    bot_api: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "999:WRONG-secret-token"
    with pytest.raises(TelegramApiError) as caught:
        _send(BotApiClient(wrong, bot_api.url), 1, "x")
    assert caught.value.error_code == 401
    assert "Unauthorized" in str(caught.value)
    assert wrong not in str(caught.value)
    # httpx logs every request URL at INFO; the token in its path is redacted.
    assert any("/bot***/sendMessage" in r.getMessage() for r in caplog.records)
    assert all(wrong not in r.getMessage() for r in caplog.records)
    assert bot_api.sent == []


def test_an_unreachable_api_raises_without_the_token() -> None:
    token = "123:SECRET-never-shown"
    client = BotApiClient(token, "http://127.0.0.1:9", http=httpx.AsyncClient(timeout=2))
    with pytest.raises(TelegramApiError) as caught:
        _send(client, 1, "x")
    assert token not in str(caught.value)
    assert "ConnectError" in str(caught.value)


def test_a_client_needs_a_token() -> None:
    assert BotApiClient.from_env({}) is None
    with pytest.raises(ValueError):
        BotApiClient("")
    assert "SECRET" not in repr(BotApiClient("1:SECRET"))


def test_redact_hides_every_token_path_segment() -> None:
    assert redact("POST https://api.telegram.org/bot1:AbC-d_e/sendMessage 200") == (
        "POST https://api.telegram.org/bot***/sendMessage 200"
    )


def test_a_text_message_update_parses() -> None:
    update = parse_update({
        "update_id": 1001,
        "message": {
            "message_id": 5, "date": 0, "text": "Здравствуйте",
            "chat": {"id": -100123, "type": "private"},
            "from": {"id": 77, "is_bot": False, "first_name": "Анна", "last_name": "Ким"},
        },
    })
    assert update.update_id == 1001
    assert update.message is not None
    assert (update.message.chat_id, update.message.text, update.message.message_id) == (
        -100123, "Здравствуйте", 5
    )
    assert (update.message.from_id, update.message.from_name) == (77, "Анна Ким")


@pytest.mark.parametrize(
    "payload",
    [
        {"update_id": 3, "edited_message": {"message_id": 1, "chat": {"id": 1}}},
        {"update_id": 3, "message": {"message_id": 1, "chat": {"id": "x"}}},
        {"update_id": 3, "message": "not an object"},
    ],
)
def test_other_updates_parse_without_a_message(payload: dict[str, object]) -> None:
    update = parse_update(payload)
    assert update.update_id == 3 and update.message is None


def test_a_message_without_text_keeps_text_none() -> None:
    update = parse_update({"update_id": 4, "message": {
        "message_id": 1, "chat": {"id": 9, "type": "private"}, "photo": []}})
    assert update.message is not None and update.message.text is None


@pytest.mark.parametrize("payload", [[], {"update_id": "1"}, {"update_id": True}, {}, None])
def test_a_body_without_an_integer_update_id_is_refused(payload: object) -> None:
    with pytest.raises(UpdateError):
        parse_update(payload)


def test_secret_matches_only_the_exact_configured_secret() -> None:
    assert secret_matches("s3cret-ABC", "s3cret-ABC")
    assert not secret_matches("s3cret-ABD", "s3cret-ABC")
    assert not secret_matches(None, "s3cret-ABC")
    assert not secret_matches("", "")  # no configured secret: nothing matches
    assert not secret_matches("секрет", "s3cret-ABC")  # non-ASCII does not crash
