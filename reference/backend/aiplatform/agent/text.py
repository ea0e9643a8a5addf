"""Text helpers shared by chunking and the extractive answerer: sentences and terms."""

# ruff: noqa: RUF001, RUF003 - Russian words are meant to be Cyrillic.
from __future__ import annotations

import re

# A sentence ends at . ! ? or … (possibly followed by closing quotes/brackets)
# and whitespace. Good enough for Russian and English prose; abbreviations
# ("т. е.", "e.g.") split early, which only makes chunks slightly smaller.
_SENTENCE_END = re.compile(r"(?<=[.!?…])[»\"')\]]*\s+")
_WORD = re.compile(r"\w+", re.UNICODE)

# Words that carry no meaning for matching a question to a sentence.
_STOPWORD_TEXT = """
    a an and are as at be by can do does for from how i in is it of on or the this that to
    what when where which who why with you your we our my me will would there their
    и в во не что он на я с со как а то все она так его но да ты к у же вы за бы по только
    ее её мне было вот от меня еще ещё нет о из ему теперь когда даже ну вдруг ли если уже
    или ни быть был него до вас нибудь опять уж вам ведь там потом себя ничего ей может они
    тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего раз тоже себе под
    будет ж тогда кто этот того потому этого какой совсем ним здесь этом один почти мой тем
    чтобы нее сейчас были куда зачем всех никогда можно при наконец два об другой хоть
    после над больше тот через эти нас про всего них какая много разве три эту моя впрочем
    хорошо свою этой перед иногда лучше чуть том нельзя такой им более всегда конечно всю
    между ли какие каков какова каково сколько ваш ваша ваши у вас
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# Russian inflects heavily ("доставка", "доставки", "доставку"): comparing the
# first letters of longer words is a crude stemmer that needs no dictionary.
STEM_LENGTH = 5


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def terms(text: str) -> list[str]:
    """Meaningful, crudely stemmed, lower-cased words of `text`, in order."""
    found: list[str] = []
    for word in _WORD.findall(text.lower().replace("ё", "е")):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        found.append(word[:STEM_LENGTH])
    return found
