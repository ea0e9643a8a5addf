"""Splitting inline text sources into chunks of about N characters, with overlap.

Paragraphs are kept whole when they fit; longer ones are split at sentence
ends, and a sentence longer than a chunk at word boundaries. Each chunk after
the first starts with the last sentences (at most `overlap` characters) of the
previous one, so an answer that straddles a boundary is still found whole.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from .text import split_sentences

DEFAULT_MAX_CHARS = 800
DEFAULT_OVERLAP = 150

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class _Unit:
    text: str
    starts_paragraph: bool


def _units(text: str, max_chars: int) -> list[_Unit]:
    units: list[_Unit] = []
    for raw in _PARAGRAPH_BREAK.split(text.replace("\r\n", "\n")):
        paragraph = _SPACES.sub(" ", raw).strip()
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            units.append(_Unit(paragraph, True))
            continue
        first = True
        for sentence in split_sentences(paragraph):
            # A sentence longer than a chunk is cut at word boundaries (and
            # inside a word only when one word is longer than a chunk).
            pieces = textwrap.wrap(sentence, max_chars) if len(sentence) > max_chars else [sentence]
            for piece in pieces:
                units.append(_Unit(piece, first))
                first = False
    return units


def _join(units: list[_Unit]) -> str:
    out = ""
    for unit in units:
        if out:
            out += "\n\n" if unit.starts_paragraph else " "
        out += unit.text
    return out


def _overlap_tail(units: list[_Unit], overlap: int) -> list[_Unit]:
    """The trailing units of a chunk that fit in `overlap` characters."""
    tail: list[_Unit] = []
    size = 0
    for unit in reversed(units):
        size += len(unit.text) + 1
        if size > overlap:
            break
        tail.insert(0, unit)
    return tail


def split_text(
    text: str, max_chars: int = DEFAULT_MAX_CHARS, overlap: int = DEFAULT_OVERLAP
) -> list[str]:
    """Chunks of `text`, each at most `max_chars` long, consecutive ones overlapping.

    Raises ValueError when `max_chars` is not positive or `overlap` is not
    smaller than `max_chars` (the chunker would never make progress).
    """
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    if not 0 <= overlap < max_chars:
        raise ValueError("overlap must be at least 0 and smaller than max_chars")
    chunks: list[str] = []
    current: list[_Unit] = []
    fresh = 0  # units in `current` that are not overlap from the previous chunk
    for unit in _units(text, max_chars):
        if current and len(_join(current + [unit])) > max_chars:
            chunks.append(_join(current))
            current = _overlap_tail(current, overlap)
            # Overlap must leave room for the new unit, or it is dropped.
            while current and len(_join(current + [unit])) > max_chars:
                current.pop(0)
            fresh = 0
        current.append(unit)
        fresh += 1
    if fresh:
        chunks.append(_join(current))
    return chunks
