"""Telegram: the Bot API client and webhook update handling."""

from .client import BotApiClient, TelegramApiError, redact
from .updates import (
    SECRET_HEADER,
    IncomingMessage,
    TelegramUpdate,
    UpdateError,
    parse_update,
    secret_matches,
)

__all__ = [
    "SECRET_HEADER",
    "BotApiClient",
    "IncomingMessage",
    "TelegramApiError",
    "TelegramUpdate",
    "UpdateError",
    "parse_update",
    "redact",
    "secret_matches",
]
