"""Text as a speech recognizer writes it: lower case, words only, numbers spelled out.

What the domain language model is trained on and what word error rate compares, so that
"set a timer for 3 minutes" and the recognizer's "set a timer for three minutes" are the same
words. Numbers are spelled by num2words (cardinals, ordinals such as 6th, times such as 7:30,
years are read as cardinals); everything that is not a letter, a digit or an apostrophe
separates words.
"""

from __future__ import annotations

import re

from modelyard.errors import optional_dependency

__all__ = ["spoken_words", "normalize"]

_TIME = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at "}
_WORD = re.compile(r"[a-z']+")


def _num2words():
    with optional_dependency("voice", "Spelling out numbers"):
        from num2words import num2words
    return num2words


def _spell(number: str, *, ordinal: bool = False) -> str:
    words = _num2words()(float(number) if "." in number else int(number), to="ordinal" if ordinal else "cardinal")
    return f" {words} "


def spoken_words(text: str) -> list[str]:
    """``text`` as the words a speaker says (see the module docstring)."""
    text = text.lower()
    text = _TIME.sub(lambda m: _spell(m[1]) + ("" if m[2] == "00" else _spell(m[2])), text)
    text = _ORDINAL.sub(lambda m: _spell(m[1], ordinal=True), text)
    text = _NUMBER.sub(lambda m: _spell(m[0]), text)
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    text = text.replace("-", " ")
    return [w.strip("'") for w in _WORD.findall(text) if w.strip("'")]


def normalize(text: str) -> str:
    """``spoken_words`` joined by single spaces."""
    return " ".join(spoken_words(text))
