"""Spoken-form normalization (against num2words' own spelling) and the answer stage's slot fillers."""

from __future__ import annotations

import jiwer
import pytest
from num2words import num2words

from modelyard.voice.answer import Answerer, template_slots
from modelyard.voice.normalize import normalize


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Set a timer for 3 minutes!", "set a timer for three minutes"),
        ("clear my calendar for september 6th", "clear my calendar for september sixth"),
        ("wake me at 7:30", "wake me at seven thirty"),
        ("wake me at 7:00", "wake me at seven"),
        ("what's 15% of 125", "what's fifteen percent of " + num2words(125).replace("-", " ")),
        ("transfer $1.5 to bob", "transfer one point five to bob"),
    ],
)
def test_normalize_spells_numbers_as_num2words_does(text: str, spoken: str) -> None:
    assert normalize(text) == spoken


def test_word_error_rate_on_normalized_text_matches_jiwer_edit_counts() -> None:
    ref, hyp = normalize("Set a timer for 3 minutes"), "set the timer for three minute please"
    out = jiwer.process_words(ref, hyp)
    assert (out.substitutions, out.deletions, out.insertions) == (2, 0, 1)
    assert jiwer.wer(ref, hyp) == pytest.approx(3 / 6)


@pytest.mark.parametrize(
    ("template", "transcript", "answer", "slots"),
    [
        ("Setting a timer for {duration|the time you asked}.", "set a timer for twenty five minutes", "Setting a timer for twenty five minutes.", {"duration": "twenty five minutes"}),
        ("Setting a timer for {duration|the time you asked}.", "start a timer", "Setting a timer for the time you asked.", {}),
        ("Weather in {place|your area}.", "what is the weather like in new york", "Weather in new york.", {"place": "new york"}),
        ("Alarm for {time}.", "wake me up at seven thirty am", "Alarm for seven thirty am.", {"time": "seven thirty am"}),
        ("Into {language}.", "how do you say thanks in spanish", "Into spanish.", {"language": "spanish"}),
        ("Total {number}.", "what is the sum", "Total that.", {}),
    ],
)  # fmt: skip
def test_slots_are_filled_from_the_transcript_or_fall_back(
    template: str, transcript: str, answer: str, slots: dict
) -> None:
    assert Answerer({"x": template}, "default").answer("x", transcript) == (answer, slots)


def test_an_intent_without_a_template_gets_the_default() -> None:
    assert Answerer({}, "Sorry.").answer("weather", "is it raining") == ("Sorry.", {})
    assert template_slots("in {place|x} at {time}") == ["place", "time"]
