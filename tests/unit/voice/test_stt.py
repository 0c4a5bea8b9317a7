"""The domain language model's biasing: hot words and the wake phrase, read back by pocketsphinx."""

from __future__ import annotations

import pytest

from modelyard.errors import SpecError

pocketsphinx = pytest.importorskip("pocketsphinx")

from modelyard.voice.stt import domain_language_model  # noqa: E402

TEXTS = ["set a timer for 5 minutes", "what is my balance", "play some music"]


def _logprob(arpa: str, tmp_path, words: list[str]) -> int:
    path = tmp_path / "lm.arpa"
    path.write_text(arpa)
    lm = pocketsphinx.NGramModel(pocketsphinx.Config(loglevel="FATAL"), pocketsphinx.LogMath(), str(path))
    return lm.prob(list(reversed(words)))  # newest word first


def test_hot_words_gain_probability_with_their_weight(tmp_path) -> None:
    light, _ = domain_language_model(TEXTS, hot_words=["garage door"], hot_word_weight=1, wake_phrase=None, order=3)
    heavy, counts = domain_language_model(
        TEXTS, hot_words=["garage door"], hot_word_weight=50, wake_phrase=None, order=3
    )
    assert counts["sentences"] == 3 + 50 and counts["dropped_words"] == 0
    assert _logprob(heavy, tmp_path, ["garage"]) > _logprob(light, tmp_path, ["garage"])
    assert _logprob(heavy, tmp_path, ["garage", "door"]) > _logprob(light, tmp_path, ["garage", "door"])
    # numbers are spelled as spoken: the model knows "five", not "5"
    assert "\tfive\t" in heavy or "\tfive\n" in heavy


def test_the_wake_phrase_starts_every_sentence(tmp_path) -> None:
    arpa, _ = domain_language_model(TEXTS, hot_words=[], hot_word_weight=1, wake_phrase="hey yard", order=3)
    assert _logprob(arpa, tmp_path, ["<s>", "hey", "yard"]) > _logprob(arpa, tmp_path, ["<s>", "set", "a"])
    with pytest.raises(SpecError, match="wake_phrase.*zzqxv unknown"):
        domain_language_model(TEXTS, hot_words=[], hot_word_weight=1, wake_phrase="hey zzqxv", order=3)
