"""The GigaChat client against a fake GigaChat on loopback: token flow, caching, errors, TLS."""


from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
from aiplatform.agent import ExtractiveProvider, Passage
from aiplatform.agent.gigachat import (
    TOKEN_MARGIN_S,
    GigaChatAuthError,
    GigaChatBadResponse,
    GigaChatClient,
    GigaChatConfig,
    GigaChatError,
    GigaChatProvider,
    GigaChatRateLimited,
    GigaChatUnavailable,
)
from aiplatform.agent.provider import FallbackProvider
from fakes.base import self_signed_tls
from fakes.gigachat import FakeGigaChat

PASSAGES = [
    Passage(1, "src-a", "Доставка", "Доставка по Москве занимает один день.", 0.9),
    Passage(2, "src-b", "Оплата", "Оплатить можно картой.", 0.4),
]


class Clock:
    """A clock the test moves forward by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[FakeGigaChat]:
    with FakeGigaChat(token_ttl_s=1800) as server:
        yield server


def _client(fake: FakeGigaChat, clock: Clock | None = None, **overrides: str) -> GigaChatClient:
    env = {
        "GIGACHAT_AUTH_KEY": fake.auth_key,
        "GIGACHAT_OAUTH_URL": fake.oauth_url,
        "GIGACHAT_API_URL": fake.api_url,
        **overrides,
    }
    config = GigaChatConfig.from_env(env)
    assert config is not None
    return GigaChatClient(config, clock=clock or time.time)


def _ask(client: GigaChatClient, question: str = "Сколько идёт доставка?") -> str:
    async def go() -> str:
        try:
            answer = await GigaChatProvider(client).answer(question, PASSAGES)
            return answer.text
        finally:
            await client.aclose()

    return asyncio.run(go())


def _ask_many(client: GigaChatClient, clock: Clock | None, steps: list[float]) -> list[str]:
    """Ask once per step, moving the clock forward by the step's seconds first."""

    async def go() -> list[str]:
        texts = []
        try:
            for step in steps:
                if clock is not None:
                    clock.now += step
                texts.append((await GigaChatProvider(client).answer("вопрос", PASSAGES)).text)
        finally:
            await client.aclose()
        return texts

    return asyncio.run(go())


def test_token_flow_then_completion_with_the_passages_and_the_question(fake: FakeGigaChat) -> None:
    text = _ask(_client(fake))
    assert text == "FAKE ANSWER to «Сколько идёт доставка?» from 2 passages"
    [oauth] = fake.calls.oauth
    assert oauth["scope"] == "GIGACHAT_API_PERS"
    assert uuid.UUID(oauth["rquid"]).version == 4
    [completion] = fake.calls.completions
    assert completion["model"] == "GigaChat"
    system, user = completion["messages"]
    assert system["role"] == "system"
    assert "Доставка по Москве занимает один день." in system["content"]
    assert user == {"role": "user", "content": "Сколько идёт доставка?"}


def test_provider_answer_cites_the_passages_it_was_given(fake: FakeGigaChat) -> None:
    async def go() -> list[str]:
        client = _client(fake)
        try:
            answer = await GigaChatProvider(client).answer("вопрос", PASSAGES)
        finally:
            await client.aclose()
        assert answer.provider == "gigachat"
        return [s.source_id for s in answer.sources]

    assert asyncio.run(go()) == ["src-a", "src-b"]


def test_the_token_is_cached_across_requests(fake: FakeGigaChat) -> None:
    clock = Clock()
    texts = _ask_many(_client(fake, clock), clock, [0, 60, 600])
    assert len(texts) == 3
    assert len(fake.calls.oauth) == 1
    assert len(fake.calls.completions) == 3


def test_a_token_near_its_expiry_is_refreshed_before_use(fake: FakeGigaChat) -> None:
    clock = Clock()
    # 1800 s tokens: the third request comes inside the safety margin.
    _ask_many(_client(fake, clock), clock, [0, 1000, 1800 - 1000 - TOKEN_MARGIN_S + 1])
    assert len(fake.calls.oauth) == 2
    assert fake.calls.refused_tokens == 0


def test_a_token_refused_with_401_is_fetched_again_once(fake: FakeGigaChat) -> None:
    async def go() -> list[str]:
        client = _client(fake)
        try:
            first = await client.complete([{"role": "user", "content": "один"}])
            fake.expire_tokens()  # revoked before its announced expiry
            second = await client.complete([{"role": "user", "content": "два"}])
        finally:
            await client.aclose()
        return [first, second]

    first, second = asyncio.run(go())
    assert "один" in first and "два" in second
    assert fake.calls.refused_tokens == 1
    assert len(fake.calls.oauth) == 2


def test_a_wrong_key_is_an_auth_error_that_does_not_show_the_key(fake: FakeGigaChat) -> None:
    client = _client(fake, GIGACHAT_AUTH_KEY="d3Jvbmc6a2V5LXZhbHVl")
    with pytest.raises(GigaChatAuthError) as caught:
        _ask(client)
    assert "d3Jvbmc6a2V5LXZhbHVl" not in str(caught.value)
    assert caught.value.status == 401
    assert fake.calls.completions == []


@pytest.mark.parametrize(
    ("status", "error"),
    [(429, GigaChatRateLimited), (500, GigaChatUnavailable), (503, GigaChatUnavailable),
     (422, GigaChatError)],
)
def test_completion_errors_are_mapped(
    fake: FakeGigaChat, status: int, error: type[GigaChatError]
) -> None:
    fake.fail_next(status)
    with pytest.raises(error) as caught:
        _ask(_client(fake))
    assert caught.value.status == status
    assert fake.auth_key not in str(caught.value)


def test_an_answer_without_choices_is_a_bad_response(fake: FakeGigaChat) -> None:
    fake.garble_next()
    with pytest.raises(GigaChatBadResponse, match="choices"):
        _ask(_client(fake))


def test_an_unreachable_server_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = GigaChatConfig(auth_key="a2V5", oauth_url=f"http://127.0.0.1:{port}/api/v2/oauth",
                            api_url=f"http://127.0.0.1:{port}/api/v1", timeout_s=2)
    with pytest.raises(GigaChatUnavailable, match="ConnectError"):
        _ask(GigaChatClient(config))


def test_tls_is_verified_against_gigachat_ca_file(tmp_path: pytest.TempPathFactory) -> None:
    tls, ca_file = self_signed_tls(str(tmp_path))
    with FakeGigaChat(tls=tls) as server:
        assert server.url.startswith("https://")
        # The system store does not know the fake's certificate: refused.
        with pytest.raises(GigaChatUnavailable):
            _ask(_client(server))
        assert "FAKE ANSWER" in _ask(_client(server, GIGACHAT_CA_FILE=ca_file))


def test_fallback_answers_from_the_knowledge_base_while_gigachat_fails(fake: FakeGigaChat) -> None:
    fake.fail_next(503)

    async def go() -> tuple[str, str]:
        client = _client(fake)
        try:
            provider = FallbackProvider(GigaChatProvider(client), ExtractiveProvider())
            answer = await provider.answer("доставка по Москве", PASSAGES)
        finally:
            await client.aclose()
        return answer.provider, answer.text

    assert asyncio.run(go()) == ("extractive", "Доставка по Москве занимает один день.")


def test_config_from_env_defaults_and_repr_hides_the_key() -> None:
    assert GigaChatConfig.from_env({}) is None
    config = GigaChatConfig.from_env({"GIGACHAT_AUTH_KEY": "c2VjcmV0LWtleQ=="})
    assert config is not None
    assert config.oauth_url == "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
    assert config.api_url == "https://gigachat.devices.sberbank.ru/api/v1"
    assert "c2VjcmV0LWtleQ==" not in repr(config)
