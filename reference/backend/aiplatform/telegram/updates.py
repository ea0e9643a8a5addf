"""Webhook update parsing and the secret-token check.

Telegram POSTs one Update per request. Only text messages are answered; any
other update kind parses to an update with no message (acknowledged, ignored).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class UpdateError(ValueError):
    """The body is not a Telegram Update (no integer update_id)."""


@dataclass(frozen=True)
class IncomingMessage:
    """The parts of a Telegram Message the webhook uses."""

    message_id: int
    chat_id: int
    chat_type: str
    text: str | None
    from_id: int | None
    from_name: str


@dataclass(frozen=True)
class TelegramUpdate:
    """An Update: its id and, when it is a message, the message."""

    update_id: int
    message: IncomingMessage | None


def _int(value: Any) -> int | None:
    # bool is an int in Python, but never a Telegram id.
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_update(payload: Any) -> TelegramUpdate:
    """Parse a webhook body; UpdateError when it has no integer update_id."""
    if not isinstance(payload, dict):
        raise UpdateError("update is not a JSON object")
    update_id = _int(payload.get("update_id"))
    if update_id is None:
        raise UpdateError("update_id is missing or not an integer")
    raw = payload.get("message")
    if not isinstance(raw, dict):
        return TelegramUpdate(update_id, None)
    chat = raw.get("chat") if isinstance(raw.get("chat"), dict) else {}
    chat_id = _int(chat.get("id"))
    message_id = _int(raw.get("message_id"))
    if chat_id is None or message_id is None:
        return TelegramUpdate(update_id, None)
    sender = raw.get("from") if isinstance(raw.get("from"), dict) else {}
    text = raw.get("text") if isinstance(raw.get("text"), str) else None
    name = " ".join(
        str(sender.get(k)) for k in ("first_name", "last_name") if sender.get(k)
    ) or str(sender.get("username") or "")
    return TelegramUpdate(
        update_id,
        IncomingMessage(
            message_id=message_id,
            chat_id=chat_id,
            chat_type=str(chat.get("type") or ""),
            text=text,
            from_id=_int(sender.get("id")),
            from_name=name,
        ),
    )


def secret_matches(received: str | None, expected: str) -> bool:
    """Whether the header's secret equals the configured one, in constant time.

    An unset expected secret never matches: a webhook without a secret would
    accept forged updates from anyone who knows the URL.
    """
    if not expected or received is None:
        return False
    return hmac.compare_digest(received.encode(), expected.encode())
