"""A minimal Telegram Bot API client (sendMessage and friends) over httpx.

The bot token is part of every URL (`{base}/bot<token>/<method>`), so it must
never reach a log line or an exception message: errors are rebuilt from the
Bot API's own `description`, and a filter on httpx's logger redacts the path.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

import httpx

DEFAULT_API_BASE = "https://api.telegram.org"
# Bot API limit for one message's text.
MAX_MESSAGE_CHARS = 4096

_TOKEN_IN_PATH = re.compile(r"/bot[^/\s\"']+")


def redact(text: str) -> str:
    """`text` with every `/bot<token>` path segment replaced by `/bot***`."""
    return _TOKEN_IN_PATH.sub("/bot***", text)


class _RedactBotToken(logging.Filter):
    """Rewrites httpx's request log lines, which print the full URL."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message:
            record.msg, record.args = redact(message), None
        return True


# Installed once at import: whoever configures logging later (uvicorn, tests)
# still gets redacted lines from httpx and httpcore.
for _name in ("httpx", "httpcore"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, _RedactBotToken) for f in _logger.filters):
        _logger.addFilter(_RedactBotToken())


class TelegramApiError(Exception):
    """A Bot API call failed. The message names the method, never the token."""

    def __init__(self, method: str, error_code: int | None, description: str) -> None:
        super().__init__(f"telegram {method}: {error_code or 'error'} {description}".strip())
        self.method = method
        self.error_code = error_code
        self.description = description


class BotApiClient:
    """Calls Bot API methods for one bot."""

    def __init__(
        self,
        token: str,
        api_base: str = DEFAULT_API_BASE,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        if not token:
            raise ValueError("a bot token is required")
        self._token = token
        self.api_base = api_base.rstrip("/")
        self._http = http or httpx.AsyncClient(timeout=timeout_s)

    def __repr__(self) -> str:
        return f"BotApiClient(api_base={self.api_base!r})"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BotApiClient | None:
        """A client for TELEGRAM_BOT_TOKEN at TELEGRAM_API_BASE, or None without a token."""
        token = env.get("TELEGRAM_BOT_TOKEN", "").strip()
        if not token:
            return None
        return cls(token, env.get("TELEGRAM_API_BASE") or DEFAULT_API_BASE)

    async def aclose(self) -> None:
        """Close the underlying HTTP client."""
        await self._http.aclose()

    async def call(self, method: str, payload: Mapping[str, Any]) -> Any:
        """Call `method` with a JSON body; the `result` on success, else TelegramApiError."""
        url = f"{self.api_base}/bot{self._token}/{method}"
        try:
            response = await self._http.post(url, json=dict(payload))
        except httpx.HTTPError as exc:
            raise TelegramApiError(method, None, redact(type(exc).__name__)) from None
        try:
            body = response.json()
        except ValueError:
            raise TelegramApiError(
                method, response.status_code, "answer is not JSON"
            ) from None
        if not isinstance(body, dict) or not body.get("ok"):
            code = body.get("error_code") if isinstance(body, dict) else None
            description = body.get("description", "") if isinstance(body, dict) else ""
            raise TelegramApiError(
                method, code or response.status_code, redact(str(description))
            )
        return body.get("result")

    async def send_message(
        self, chat_id: int | str, text: str, reply_to_message_id: int | None = None
    ) -> dict[str, Any]:
        """Send `text` (cut to Telegram's 4096 characters) to `chat_id`; the sent Message."""
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 1] + "…"
        payload: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if reply_to_message_id is not None:
            payload["reply_parameters"] = {
                "message_id": reply_to_message_id,
                "allow_sending_without_reply": True,
            }
        result = await self.call("sendMessage", payload)
        return result if isinstance(result, dict) else {}
