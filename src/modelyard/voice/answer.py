"""The answer stage: a template per intent, with slots filled from the transcript.

A template is text with ``{slot}`` or ``{slot|fallback}`` (the fallback when the transcript has
no such value; without one, "that"). The slots are modest keyword and pattern fillers over the
recognizer's words (numbers are spoken words there, "twenty five"), listed in ``SLOTS``:

- ``duration``: a number and a unit ("five minutes", "an hour and a half" is not parsed)
- ``number``: the first spoken number ("twenty five")
- ``time``: a clock time after at/for/to ("seven thirty am", "noon")
- ``place``: the words after the last " in " / " to " / " for " (up to three, a city or a country)
- ``language``: a language named in the transcript ("spanish")
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

__all__ = ["SLOTS", "Answerer", "template_slots"]

_UNITS = "seconds?|minutes?|hours?|days?|weeks?|months?|years?"
_NUMBER_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand a an half"
).split()
_NUM = rf"(?:(?:{'|'.join(_NUMBER_WORDS)})(?:\s+(?:and\s+)?(?:{'|'.join(_NUMBER_WORDS[:-3])}))*)"
_LANGUAGES = (
    "english spanish french german italian portuguese russian chinese mandarin japanese korean arabic hindi "
    "dutch swedish greek turkish polish hebrew vietnamese thai latin"
).split()
_STOP = {"the", "a", "an", "me", "my", "please", "now", "today", "tomorrow", "right", "there"}


def _duration(text: str) -> str | None:
    m = re.search(rf"\b({_NUM})\s+({_UNITS})\b", text)
    return f"{m[1]} {m[2]}" if m else None


def _number(text: str) -> str | None:
    m = re.search(rf"\b({_NUM})\b", text)
    return m[1] if m and m[1] not in ("a", "an", "half") else None


def _time(text: str) -> str | None:
    m = re.search(rf"\b(?:at|for|to)\s+((?:{_NUM})(?:\s+(?:am|pm|o'clock))?|noon|midnight)\b", text)
    return m[1] if m else None


def _place(text: str) -> str | None:
    m = list(re.finditer(r"\b(?:in|to|for)\s+((?:[a-z']+\s?){1,3})$", text))
    if not m:
        return None
    words = [w for w in m[-1][1].split() if w not in _STOP]
    return " ".join(words) or None


def _language(text: str) -> str | None:
    return next((w for w in text.split() if w in _LANGUAGES), None)


SLOTS: dict[str, Callable[[str], str | None]] = {
    "duration": _duration,
    "number": _number,
    "time": _time,
    "place": _place,
    "language": _language,
}
_SLOT = re.compile(r"\{([a-z_]+)(?:\|([^{}]*))?\}")


def template_slots(template: str) -> list[str]:
    """The slot names ``template`` uses."""
    return [m[1] for m in _SLOT.finditer(template)]


class Answerer:
    """Fills ``templates[intent]`` (else ``default``) from a transcript."""

    def __init__(self, templates: Mapping[str, str], default: str) -> None:
        self.templates = dict(templates)
        self.default = default

    def answer(self, intent: str | None, transcript: str) -> tuple[str, dict[str, str]]:
        """(answer text, the slots it filled)."""
        template = self.templates.get(intent or "", self.default)
        filled: dict[str, str] = {}

        def fill(m: re.Match) -> str:
            value = SLOTS[m[1]](transcript)
            if value is not None:
                filled[m[1]] = value
                return value
            return m[2] if m[2] is not None else "that"

        return _SLOT.sub(fill, template), filled
