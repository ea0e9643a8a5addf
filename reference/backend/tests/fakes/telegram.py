"""A fake Telegram Bot API that records sendMessage calls.

Routes `/bot<token>/<method>` like the real one; a wrong token gets the real
401 answer. sendMessage calls are recorded (thread-safe) for the tests to count;
setWebhook / getWebhookInfo / deleteWebhook keep the webhook's settings.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Any

from .base import FakeServer, Reply, Request


@dataclass(frozen=True)
class SentMessage:
    """One recorded sendMessage call."""

    chat_id: Any
    text: str
    payload: dict[str, Any]


class FakeTelegram(FakeServer):
    """The fake; point the client's TELEGRAM_API_BASE at `url`."""

    def __init__(self, token: str = "123456:FAKE-bot-token") -> None:
        super().__init__()
        self.token = token
        self.sent: list[SentMessage] = []
        self.webhook: dict[str, Any] = {}
        self._ids = itertools.count(1)

    def handle(self, request: Request) -> Reply:
        """Answer one Bot API call."""
        parts = request.path.lstrip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        token, method = parts[0][3:], parts[1]
        if token != self.token:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        payload = request.json() or {}
        if method == "sendMessage":
            return self._send_message(payload)
        if method == "setWebhook":
            with self.lock:
                self.webhook = dict(payload)
            return 200, {"ok": True, "result": True, "description": "Webhook was set"}
        if method == "deleteWebhook":
            with self.lock:
                self.webhook = {}
            return 200, {"ok": True, "result": True, "description": "Webhook was deleted"}
        if method == "getWebhookInfo":
            with self.lock:
                info = {"url": self.webhook.get("url", ""), "pending_update_count": 0}
            return 200, {"ok": True, "result": info}
        return 404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"}

    def _send_message(self, payload: dict[str, Any]) -> Reply:
        chat_id, text = payload.get("chat_id"), payload.get("text")
        if chat_id is None or not text:
            return 400, {"ok": False, "error_code": 400,
                         "description": "Bad Request: message text is empty"}
        with self.lock:
            self.sent.append(SentMessage(chat_id, str(text), dict(payload)))
            message_id = next(self._ids)
        return 200, {"ok": True, "result": {
            "message_id": message_id, "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"}, "text": text,
        }}

    def sent_to(self, chat_id: Any) -> list[SentMessage]:
        """The recorded messages sent to `chat_id`."""
        with self.lock:
            return [m for m in self.sent if m.chat_id == chat_id]
