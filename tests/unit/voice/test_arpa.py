"""The domain language model's ARPA file, read back by pocketsphinx: each history's distribution sums to 1."""

from __future__ import annotations

import math

import pytest

from modelyard.voice.arpa import EOS, UNK, write_arpa

pocketsphinx = pytest.importorskip("pocketsphinx")

SENTENCES = [s.split() for s in ("set a timer", "set an alarm", "set a timer for five minutes", "what is the time")]


def _model(tmp_path, order):
    path = tmp_path / "lm.arpa"
    path.write_text(write_arpa(SENTENCES, order=order, vocabulary=["weather"]))
    config = pocketsphinx.Config(loglevel="FATAL")
    logmath = pocketsphinx.LogMath()
    return pocketsphinx.NGramModel(config, logmath, str(path)), logmath


@pytest.mark.parametrize("order", [1, 2, 3])
def test_every_history_sums_to_one_in_pocketsphinx_reading(tmp_path, order) -> None:
    lm, logmath = _model(tmp_path, order)
    vocab = sorted({w for s in SENTENCES for w in s} | {"weather", EOS, UNK})
    histories = [[], ["set"], ["set", "a"], ["a", "timer"], ["the"], ["five", "minutes"], ["weather"], ["time", "set"]]
    for history in histories[: 1 + 7 * (order > 1)]:
        # NGramModel.prob takes the words newest first (sphinxbase ngram_prob: word, then its history)
        total = sum(math.exp(logmath.log_to_ln(lm.prob([w, *reversed(history)]))) for w in vocab)
        assert total == pytest.approx(1.0, abs=2e-3), (history, total)


def test_seen_continuations_beat_unseen_ones(tmp_path) -> None:
    lm, _ = _model(tmp_path, 3)
    assert lm.prob(["timer", "a", "set"]) > lm.prob(["alarm", "a", "set"]) > lm.prob(["weather", "a", "set"])


def test_order_must_be_positive() -> None:
    with pytest.raises(ValueError, match="order must be at least 1"):
        write_arpa(SENTENCES, order=0)
