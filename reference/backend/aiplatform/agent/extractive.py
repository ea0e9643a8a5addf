"""The offline answerer: quotes the passages' sentences that best match the question.

Used when no GigaChat credentials are set (a fresh machine, the tests) and as the
fallback when GigaChat fails, so the platform always answers from its knowledge
base. No model, no network: a sentence scores by the question's terms it shares.
"""

# ruff: noqa: RUF001 - the Russian text is meant to be Cyrillic.
from __future__ import annotations

from dataclasses import dataclass

from .provider import Answer, Passage, SourceRef
from .text import split_sentences, terms

NO_ANSWER = "В базе знаний нет ответа на этот вопрос. / The knowledge base has no answer to this."
MAX_SENTENCES = 2
MAX_ANSWER_CHARS = 700
# Only the best passages are read: retrieval already ranked them.
TOP_PASSAGES = 3


@dataclass(frozen=True)
class _Candidate:
    score: float
    passage_index: int
    sentence_index: int
    sentence: str
    passage: Passage


def _score(question_terms: set[str], sentence: str, passage_index: int) -> float:
    shared = question_terms & set(terms(sentence))
    if not shared:
        return 0.0
    # Fraction of the question covered, plus a small bonus for passages
    # retrieval ranked higher, so ties go to the better passage.
    return len(shared) / len(question_terms) + 0.01 * (TOP_PASSAGES - passage_index)


class ExtractiveProvider:
    """Answers by quoting the best-matching sentences of the top passages."""

    name = "extractive"

    def __init__(self, max_sentences: int = MAX_SENTENCES) -> None:
        self.max_sentences = max_sentences

    async def answer(self, question: str, passages: list[Passage]) -> Answer:
        """The best-matching sentences, in reading order, and the sources they come from."""
        return self.answer_now(question, passages)

    def answer_now(self, question: str, passages: list[Passage]) -> Answer:
        """Synchronous form of `answer` (it does no I/O)."""
        question_terms = set(terms(question))
        candidates: list[_Candidate] = []
        if question_terms:
            for p_index, passage in enumerate(passages[:TOP_PASSAGES]):
                for s_index, sentence in enumerate(split_sentences(passage.content)):
                    score = _score(question_terms, sentence, p_index)
                    if score > 0:
                        candidates.append(_Candidate(score, p_index, s_index, sentence, passage))
        if not candidates:
            return Answer(NO_ANSWER, [], self.name)
        best = sorted(candidates, key=lambda c: (-c.score, c.passage_index, c.sentence_index))
        # Keep the chosen sentences distinct (overlapping chunks repeat some).
        chosen: list[_Candidate] = []
        for candidate in best:
            if any(c.sentence == candidate.sentence for c in chosen):
                continue
            chosen.append(candidate)
            if len(chosen) == self.max_sentences:
                break
        chosen.sort(key=lambda c: (c.passage_index, c.sentence_index))
        text = " ".join(c.sentence for c in chosen)
        if len(text) > MAX_ANSWER_CHARS:
            text = text[: MAX_ANSWER_CHARS - 1].rstrip() + "…"
        refs: list[SourceRef] = []
        for c in chosen:
            if all(r.source_id != c.passage.source_id for r in refs):
                refs.append(SourceRef(c.passage.source_id, c.passage.chunk_id, c.passage.title))
        return Answer(text, refs, self.name)
