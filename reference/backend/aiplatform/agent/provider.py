"""The provider interface every answerer implements, and the values it passes around.

A provider turns a question plus the knowledge passages retrieval found into an
answer that cites its sources. Routers only see `AnswerProvider`, so GigaChat, the
offline extractive answerer and the fallback between them are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from aiplatform import logs


@dataclass(frozen=True)
class Passage:
    """One retrieved knowledge chunk: what the answerer may quote."""

    chunk_id: int
    source_id: str
    title: str
    content: str
    rank: float = 0.0


@dataclass(frozen=True)
class SourceRef:
    """A source an answer relies on, as shown to the visitor."""

    source_id: str
    chunk_id: int
    title: str

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for API answers."""
        return {"source_id": self.source_id, "chunk_id": self.chunk_id, "title": self.title}


@dataclass(frozen=True)
class Answer:
    """The agent's reply: text, the sources it cites, and which provider made it."""

    text: str
    sources: list[SourceRef] = field(default_factory=list)
    provider: str = ""

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form for API answers."""
        return {
            "text": self.text,
            "sources": [s.as_dict() for s in self.sources],
            "provider": self.provider,
        }


class ProviderError(Exception):
    """A provider could not answer. The message never carries a credential."""

    kind = "provider_error"


@runtime_checkable
class AnswerProvider(Protocol):
    """Anything that answers a question from passages."""

    name: str

    async def answer(self, question: str, passages: list[Passage]) -> Answer:
        """Answer `question` using only `passages`; raise ProviderError when unable."""
        ...


def sources_of(passages: list[Passage]) -> list[SourceRef]:
    """The distinct sources of `passages`, in the order they first appear."""
    seen: set[str] = set()
    refs: list[SourceRef] = []
    for passage in passages:
        if passage.source_id in seen:
            continue
        seen.add(passage.source_id)
        refs.append(SourceRef(passage.source_id, passage.chunk_id, passage.title))
    return refs


class FallbackProvider:
    """Try `primary`; when it fails, answer with `fallback` instead.

    A visitor on the widget or in Telegram should get an answer from the
    knowledge base even while GigaChat is down or rate-limiting us.
    """

    def __init__(self, primary: AnswerProvider, fallback: AnswerProvider) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name

    async def answer(self, question: str, passages: list[Passage]) -> Answer:
        """The primary's answer, or the fallback's when the primary raises ProviderError."""
        try:
            return await self.primary.answer(question, passages)
        except ProviderError as exc:
            logs.log("warning", event="agent provider failed", provider=self.primary.name,
                     kind=exc.kind, error=str(exc), fallback=self.fallback.name)
            return await self.fallback.answer(question, passages)

    async def aclose(self) -> None:
        """Close both providers' connections, where they hold any."""
        for provider in (self.primary, self.fallback):
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()
