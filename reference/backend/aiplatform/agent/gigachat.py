"""GigaChat over httpx: the OAuth token flow and chat completions.

The authorization key (base64 of client id:secret) buys an access token at the
OAuth endpoint; the token (valid about 30 minutes) authorizes chat completions.
The token is cached until shortly before it expires and fetched again when the
API answers 401 (revoked early, or our clock is off). Neither the key nor the
token ever appears in an exception message or a log line.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from .provider import Answer, Passage, ProviderError, sources_of

DEFAULT_OAUTH_URL = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
DEFAULT_API_URL = "https://gigachat.devices.sberbank.ru/api/v1"
DEFAULT_SCOPE = "GIGACHAT_API_PERS"
DEFAULT_MODEL = "GigaChat"
# Fetch a new token this long before the old one expires, so a request never
# leaves with a token that dies on the way.
TOKEN_MARGIN_S = 60.0
MAX_CONTEXT_CHARS = 6000

SYSTEM_PROMPT = (
    "Ты помощник сайта. Отвечай на вопрос посетителя только по фрагментам базы знаний ниже, "
    "кратко и на языке вопроса. Если ответа во фрагментах нет, так и скажи.\n"
    "You are a website assistant: answer only from the knowledge base excerpts below."
)


class GigaChatError(ProviderError):
    """GigaChat could not answer."""

    kind = "gigachat_error"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GigaChatAuthError(GigaChatError):
    """The authorization key was refused (wrong key or scope)."""

    kind = "auth"


class GigaChatRateLimited(GigaChatError):
    """GigaChat answered 429."""

    kind = "rate_limited"


class GigaChatUnavailable(GigaChatError):
    """GigaChat could not be reached or answered 5xx."""

    kind = "unavailable"


class GigaChatBadResponse(GigaChatError):
    """GigaChat answered something that is not the documented shape."""

    kind = "bad_response"


@dataclass(frozen=True)
class GigaChatConfig:
    """Where and how to reach GigaChat. `auth_key` is a secret: kept out of repr."""

    auth_key: str = field(repr=False)
    oauth_url: str = DEFAULT_OAUTH_URL
    api_url: str = DEFAULT_API_URL
    scope: str = DEFAULT_SCOPE
    model: str = DEFAULT_MODEL
    ca_file: str | None = None
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GigaChatConfig | None:
        """The configuration the environment gives, or None without GIGACHAT_AUTH_KEY."""
        key = env.get("GIGACHAT_AUTH_KEY", "").strip()
        if not key:
            return None
        return cls(
            auth_key=key,
            oauth_url=env.get("GIGACHAT_OAUTH_URL") or DEFAULT_OAUTH_URL,
            api_url=(env.get("GIGACHAT_API_URL") or DEFAULT_API_URL).rstrip("/"),
            scope=env.get("GIGACHAT_SCOPE") or DEFAULT_SCOPE,
            model=env.get("GIGACHAT_MODEL") or DEFAULT_MODEL,
            ca_file=env.get("GIGACHAT_CA_FILE") or None,
            timeout_s=float(env.get("GIGACHAT_TIMEOUT_S") or 30.0),
        )

    def tls_verify(self) -> ssl.SSLContext | bool:
        """What httpx verifies the server with: the system CAs, or GIGACHAT_CA_FILE's.

        Sber's endpoints are signed by the Russian Trusted Root CA, which is not
        in every system store; pointing GIGACHAT_CA_FILE at it beats turning
        verification off.
        """
        if self.ca_file:
            return ssl.create_default_context(cafile=self.ca_file)
        return True


def _status_error(what: str, response: httpx.Response) -> GigaChatError:
    status = response.status_code
    if status == 429:
        return GigaChatRateLimited(f"{what}: rate limited (429)", status)
    if status >= 500:
        return GigaChatUnavailable(f"{what}: server error ({status})", status)
    if status in (401, 403):
        return GigaChatAuthError(f"{what}: refused ({status})", status)
    return GigaChatError(f"{what}: unexpected status {status}", status)


class GigaChatClient:
    """Token-caching GigaChat client. One per process; safe for concurrent use."""

    def __init__(
        self,
        config: GigaChatConfig,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._http = http or httpx.AsyncClient(
            verify=config.tls_verify(), timeout=config.timeout_s
        )
        self._clock = clock
        self._token: str | None = None
        self._expires_at: float = 0.0  # seconds since the epoch
        self._lock = asyncio.Lock()
        self.tokens_fetched = 0

    async def aclose(self) -> None:
        """Close the underlying HTTP client."""
        await self._http.aclose()

    async def _post(self, what: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._http.post(url, **kwargs)
        except httpx.TimeoutException as exc:
            raise GigaChatUnavailable(f"{what}: timed out") from exc
        except httpx.HTTPError as exc:
            # The exception class names the failure (ConnectError, SSL...) without
            # echoing headers, which carry the key.
            raise GigaChatUnavailable(f"{what}: {type(exc).__name__}") from exc

    async def _fetch_token(self) -> None:
        response = await self._post(
            "oauth",
            self.config.oauth_url,
            headers={
                "Authorization": f"Basic {self.config.auth_key}",
                "RqUID": str(uuid.uuid4()),
                "Accept": "application/json",
            },
            data={"scope": self.config.scope},
        )
        if response.status_code in (400, 401, 403):
            raise GigaChatAuthError(
                f"oauth: authorization key refused ({response.status_code})",
                response.status_code,
            )
        if response.status_code != 200:
            raise _status_error("oauth", response)
        try:
            body = response.json()
            token = str(body["access_token"])
            expires_at = float(body["expires_at"]) / 1000.0  # milliseconds
        except (ValueError, KeyError, TypeError) as exc:
            raise GigaChatBadResponse("oauth: no access_token/expires_at in the answer") from exc
        self._token, self._expires_at = token, expires_at
        self.tokens_fetched += 1

    async def token(self, *, force: bool = False) -> str:
        """A valid access token: the cached one unless it is (nearly) expired."""
        async with self._lock:
            stale = self._clock() >= self._expires_at - TOKEN_MARGIN_S
            if force or self._token is None or stale:
                await self._fetch_token()
            assert self._token is not None
            return self._token

    async def complete(self, messages: list[dict[str, str]]) -> str:
        """The model's reply to `messages` (choices[0].message.content)."""
        token = await self.token()
        response = await self._completion(token, messages)
        if response.status_code == 401:
            # The token died before its announced expiry: fetch one more, once.
            async with self._lock:
                if self._token == token:
                    self._token = None
            response = await self._completion(await self.token(), messages)
        if response.status_code != 200:
            raise _status_error("chat/completions", response)
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise GigaChatBadResponse("chat/completions: no choices[0].message.content") from exc
        if not isinstance(content, str):
            raise GigaChatBadResponse("chat/completions: content is not text")
        return content

    async def _completion(self, token: str, messages: list[dict[str, str]]) -> httpx.Response:
        return await self._post(
            "chat/completions",
            f"{self.config.api_url}/chat/completions",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            json={"model": self.config.model, "messages": messages},
        )


def build_messages(question: str, passages: list[Passage]) -> list[dict[str, str]]:
    """The system message with the numbered passages, then the visitor's question."""
    context: list[str] = []
    size = 0
    for number, passage in enumerate(passages, start=1):
        block = f"[{number}] {passage.title}\n{passage.content}"
        if size + len(block) > MAX_CONTEXT_CHARS:
            break
        context.append(block)
        size += len(block)
    system = SYSTEM_PROMPT + "\n\n" + ("\n\n".join(context) if context else "(пусто / empty)")
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


class GigaChatProvider:
    """AnswerProvider backed by GigaChat chat completions."""

    name = "gigachat"

    def __init__(self, client: GigaChatClient) -> None:
        self.client = client

    async def answer(self, question: str, passages: list[Passage]) -> Answer:
        """GigaChat's answer; its sources are the passages it was given."""
        text = await self.client.complete(build_messages(question, passages))
        return Answer(text.strip(), sources_of(passages), self.name)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self.client.aclose()
