"""The agent: answers visitors' questions from a project's knowledge base.

`provider_from_env` picks GigaChat when its key is set (falling back to the
offline extractive answerer when GigaChat fails), else the extractive answerer.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping

from aiplatform import logs

from .extractive import ExtractiveProvider
from .gigachat import GigaChatClient, GigaChatConfig, GigaChatProvider
from .provider import Answer, AnswerProvider, FallbackProvider, Passage, ProviderError, SourceRef

__all__ = [
    "Answer",
    "AnswerProvider",
    "ExtractiveProvider",
    "FallbackProvider",
    "Passage",
    "ProviderError",
    "SourceRef",
    "agent_for",
    "close_agent",
    "provider_from_env",
]


def provider_from_env(env: Mapping[str, str] | None = None) -> AnswerProvider:
    """GigaChat (with the extractive fallback) when GIGACHAT_AUTH_KEY is set, else extractive."""
    config = GigaChatConfig.from_env(os.environ if env is None else env)
    if config is None:
        return ExtractiveProvider()
    try:
        client = GigaChatClient(config)
    except (OSError, ssl.SSLError) as error:
        # An unreadable GIGACHAT_CA_FILE: answering from the knowledge base beats
        # failing every question; the log says why GigaChat is not used.
        logs.log("error", event="gigachat disabled", reason=f"GIGACHAT_CA_FILE: {error}")
        return ExtractiveProvider()
    return FallbackProvider(GigaChatProvider(client), ExtractiveProvider())


def agent_for(state: object) -> AnswerProvider:
    """The app's provider (`app.state.agent`), made from the environment on first use.

    Lazily, so a test can set GIGACHAT_* before the first question, and so an
    app without questions never builds an HTTP client.
    """
    provider = getattr(state, "agent", None)
    if provider is None:
        provider = provider_from_env()
        state.agent = provider  # type: ignore[attr-defined]
    return provider


async def close_agent(state: object) -> None:
    """Close the app's provider's HTTP connections (lifespan shutdown); a no-op without one."""
    provider = getattr(state, "agent", None)
    close = getattr(provider, "aclose", None)
    if close is not None:
        await close()
