"""Chunking of inline text sources and the offline extractive answerer (pure, no I/O)."""

# ruff: noqa: RUF001 - the Russian test texts are meant to be Cyrillic.
from __future__ import annotations

import asyncio
import itertools

import pytest
from aiplatform.agent import ExtractiveProvider, Passage, provider_from_env
from aiplatform.agent.chunking import split_text
from aiplatform.agent.extractive import NO_ANSWER
from aiplatform.agent.provider import FallbackProvider, ProviderError
from aiplatform.agent.text import split_sentences, terms
from hypothesis import given, settings
from hypothesis import strategies as st

SENTENCES = [f"Предложение номер {i} рассказывает о доставке товара {i}." for i in range(40)]


def test_short_text_is_one_chunk() -> None:
    assert split_text("  Привет,   мир.\n\n") == ["Привет, мир."]


def test_empty_text_has_no_chunks() -> None:
    assert split_text(" \n\n \n") == []


def test_paragraphs_are_kept_whole_when_they_fit() -> None:
    text = "Первый абзац.\n\nВторой абзац.\n\nТретий абзац."
    assert split_text(text, max_chars=30, overlap=0) == [
        "Первый абзац.\n\nВторой абзац.",
        "Третий абзац.",
    ]


def test_long_paragraph_splits_at_sentences_within_the_limit_and_overlaps() -> None:
    text = " ".join(SENTENCES)
    chunks = split_text(text, max_chars=300, overlap=120)
    assert len(chunks) > 3
    assert all(len(c) <= 300 for c in chunks)
    # Every sentence survives whole in some chunk, in order.
    for sentence in SENTENCES:
        assert any(sentence in c for c in chunks), sentence
    # Each chunk starts with the previous chunk's last sentences (at most 120 characters).
    for previous, following in itertools.pairwise(chunks):
        shared = [s for s in split_sentences(following) if s in split_sentences(previous)]
        assert shared and previous.endswith(" ".join(shared)) and following.startswith(shared[0])
        assert len(" ".join(shared)) <= 120


def test_without_overlap_chunks_do_not_repeat() -> None:
    chunks = split_text(" ".join(SENTENCES), max_chars=300, overlap=0)
    rejoined = " ".join(chunks)
    assert rejoined == " ".join(SENTENCES)


def test_a_sentence_longer_than_a_chunk_is_cut_at_words() -> None:
    words = ["слово"] * 200  # one 1199-character sentence
    chunks = split_text(" ".join(words) + ".", max_chars=100, overlap=0)
    assert all(len(c) <= 100 for c in chunks)
    assert " ".join(chunks).split() == (" ".join(words) + ".").split()


@pytest.mark.parametrize(("max_chars", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_bad_limits_are_refused(max_chars: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        split_text("text", max_chars=max_chars, overlap=overlap)


def test_terms_drop_stopwords_and_stem_russian_inflections() -> None:
    assert terms("Сколько стоит доставка в Москву?") == terms("стоимость доставки Москва")[:0] + [
        "стоит", "доста", "москв"
    ]
    assert set(terms("доставку")) == set(terms("доставки")) == {"доста"}
    assert terms("Ёлка и елка") == ["елка", "елка"]


KNOWLEDGE = [
    Passage(1, "src-delivery", "Доставка",
            "Мы работаем с 2015 года. Доставка по Москве занимает один день. "
            "Доставка в регионы занимает от трёх до семи дней.", 0.9),
    Passage(2, "src-payment", "Оплата",
            "Оплатить заказ можно картой или по счёту. Возврат денег занимает до десяти дней.",
            0.5),
    Passage(3, "src-about", "О компании", "Наш офис находится в Москве на Тверской улице.", 0.1),
]


def test_extractive_answer_quotes_the_best_sentences_and_cites_their_sources() -> None:
    answer = ExtractiveProvider().answer_now("Сколько дней занимает доставка в регионы?", KNOWLEDGE)
    assert answer.provider == "extractive"
    # The two best sentences, in reading order: the one that matches the whole
    # question and the next best; the unrelated sentence of the same passage is left out.
    assert answer.text == (
        "Доставка по Москве занимает один день. "
        "Доставка в регионы занимает от трёх до семи дней."
    )
    assert [s.source_id for s in answer.sources] == ["src-delivery"]


def test_extractive_answer_cites_every_source_it_quotes_once() -> None:
    answer = ExtractiveProvider().answer_now("Как оплатить заказ картой и где офис?", KNOWLEDGE)
    cited = [s.source_id for s in answer.sources]
    assert cited == ["src-payment", "src-about"]
    assert "картой" in answer.text and "Тверской" in answer.text


def test_extractive_answer_without_a_match_says_so_and_cites_nothing() -> None:
    answer = ExtractiveProvider().answer_now("Какая погода на Марсе?", KNOWLEDGE)
    assert answer.text == NO_ANSWER and answer.sources == []
    assert ExtractiveProvider().answer_now("доставка", []).text == NO_ANSWER


def test_extractive_answer_never_repeats_a_sentence_from_overlapping_chunks() -> None:
    repeated = [KNOWLEDGE[0], Passage(9, "src-delivery", "Доставка", KNOWLEDGE[0].content, 0.8)]
    answer = ExtractiveProvider().answer_now("доставка по Москве", repeated)
    assert answer.text.count("Доставка по Москве занимает один день.") == 1


class _Broken:
    name = "broken"

    async def answer(self, question: str, passages: list[Passage]) -> object:
        raise ProviderError("down")


def test_fallback_answers_with_the_extractive_provider_when_the_primary_fails() -> None:
    provider = FallbackProvider(_Broken(), ExtractiveProvider())
    answer = asyncio.run(provider.answer("доставка в регионы", KNOWLEDGE))
    assert answer.provider == "extractive"
    assert "регионы" in answer.text


def test_provider_from_env_picks_extractive_without_a_key_and_gigachat_with_one() -> None:
    assert provider_from_env({}).name == "extractive"
    chosen = provider_from_env({"GIGACHAT_AUTH_KEY": "a2V5"})
    assert isinstance(chosen, FallbackProvider)
    assert chosen.primary.name == "gigachat" and chosen.fallback.name == "extractive"


def test_an_unreadable_gigachat_ca_file_falls_back_to_the_extractive_answerer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    chosen = provider_from_env({"GIGACHAT_AUTH_KEY": "a2V5",
                                "GIGACHAT_CA_FILE": "/nonexistent/russian_trusted_root_ca.pem"})
    assert chosen.name == "extractive"
    assert "gigachat disabled" in capsys.readouterr().out


_WORDS = st.text(alphabet="абвгдежзиклмнопрстуфхцчшщэюяabcdefxyz0123456789", min_size=1,
                 max_size=30)
_SENTENCE = st.builds(lambda words, end: " ".join(words) + end,
                      st.lists(_WORDS, min_size=1, max_size=25), st.sampled_from([".", "!", "?"]))
_TEXT = st.lists(st.lists(_SENTENCE, min_size=1, max_size=8).map(" ".join),
                 min_size=1, max_size=6).map("\n\n".join)


@settings(max_examples=200, deadline=None)
@given(text=_TEXT, max_chars=st.integers(40, 400), overlap_share=st.floats(0, 0.9))
def test_chunks_fit_keep_every_word_in_order_and_only_repeat_as_overlap(
    text: str, max_chars: int, overlap_share: float
) -> None:
    overlap = int(max_chars * overlap_share)
    chunks = split_text(text, max_chars=max_chars, overlap=overlap)
    assert chunks and all(0 < len(c) <= max_chars for c in chunks)
    # Without overlap the chunks are the text's words, each exactly once, in order.
    plain = split_text(text, max_chars=max_chars, overlap=0)
    assert " ".join(plain).split() == text.split()
    # With overlap, each chunk's words continue the text where the overlap ends.
    words = text.split()
    position = 0
    for chunk in chunks:
        chunk_words = chunk.split()
        start = next(i for i in range(position, -1, -1)
                     if words[i:i + len(chunk_words)] == chunk_words)
        position = start + len(chunk_words)
    assert position == len(words)
