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
    "bot_for",
    "close_bot",
    "parse_update",
    "redact",
    "secret_matches",
]


def bot_for(state: object) -> BotApiClient | None:
    """The app's Bot API client (`app.state.telegram_bot`), made from the environment once.

    None when TELEGRAM_BOT_TOKEN is not set.
    """
    import os

    if not hasattr(state, "telegram_bot"):
        state.telegram_bot = BotApiClient.from_env(os.environ)  # type: ignore[attr-defined]
    return state.telegram_bot  # type: ignore[attr-defined,no-any-return]


async def close_bot(state: object) -> None:
    """Close the app's Bot API client (lifespan shutdown); a no-op without one."""
    bot = getattr(state, "telegram_bot", None)
    if bot is not None:
        await bot.aclose()
