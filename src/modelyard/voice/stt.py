"""The speech-to-text stage: pocketsphinx 5 (CMU Sphinx) with its bundled US English acoustic model.

Offline: the PyPI wheel ships the en-us acoustic model, the CMU pronouncing dictionary and a
general trigram language model. ``language_model: domain`` replaces that trigram model by one of
the intent model's training texts (``arpa.py``), plus the hot words, each joined ``hot_word_weight``
times as a sentence of its own, and, with a wake phrase, the phrase before every sentence: what
biases the search toward the words the assistant is for. A decoder is not thread-safe, so one
lock serializes the utterances of a stage (serving runs them in worker threads).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.errors import SpecError, optional_dependency
from modelyard.voice.arpa import write_arpa
from modelyard.voice.normalize import normalize, spoken_words

__all__ = ["Recognizer", "domain_language_model", "unknown_words", "LM_FILE"]

LM_FILE = "language_model.arpa"


def _pocketsphinx() -> Any:
    with optional_dependency("voice", "Speech to text (pocketsphinx)"):
        import pocketsphinx
    return pocketsphinx


def _decoder(lm: Path | None) -> Any:
    ps = _pocketsphinx()
    return ps.Decoder(loglevel="FATAL", **({"lm": str(lm)} if lm is not None else {}))


def unknown_words(words: Iterable[str]) -> list[str]:
    """The words the bundled pronouncing dictionary lacks (the recognizer can never hear them)."""
    decoder = _decoder(None)
    return sorted({w for w in words if decoder.lookup_word(w) is None})


def domain_language_model(
    texts: Iterable[str], *, hot_words: list[str], hot_word_weight: int, wake_phrase: str | None, order: int
) -> tuple[str, dict[str, int]]:
    """(ARPA text, counts) of the domain model; words the dictionary lacks are dropped from its sentences."""
    sentences = [spoken_words(t) for t in texts]
    sentences += [spoken_words(h) for h in hot_words for _ in range(hot_word_weight)]
    vocabulary = {w for s in sentences for w in s}
    wake = spoken_words(wake_phrase) if wake_phrase else []
    missing = set(unknown_words(vocabulary | set(wake)))
    if missing & set(wake):
        raise SpecError(
            f"Invalid value for `stages.speech_to_text.wake_phrase`: expected words of the pronouncing dictionary, "
            f"received {wake_phrase!r} ({', '.join(sorted(missing & set(wake)))} unknown)",
            field="stages.speech_to_text.wake_phrase",
        )
    kept = [[w for w in s if w not in missing] for s in sentences]
    kept = [wake + s for s in kept if s]
    if not kept:
        raise SpecError("The domain language model has no sentences: the intent model's training texts are empty")
    counts = {"sentences": len(kept), "words": len(vocabulary - missing), "dropped_words": len(missing)}
    return write_arpa(kept, order=order), counts


class Recognizer:
    """16 kHz mono int16 samples → the words heard (lower case, spoken numbers)."""

    def __init__(self, lm: Path | None, wake_phrase: str | None = None) -> None:
        self._decoder = _decoder(lm)
        self._lock = threading.Lock()
        self.wake = normalize(wake_phrase) if wake_phrase else None

    def transcribe(self, samples: np.ndarray) -> str:
        pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2").tobytes()
        with self._lock:
            self._decoder.start_utt()
            self._decoder.process_raw(pcm, full_utt=True)
            self._decoder.end_utt()
            hyp = self._decoder.hyp()
        return normalize(hyp.hypstr) if hyp is not None else ""

    def split_wake(self, transcript: str) -> tuple[bool | None, str]:
        """(wake phrase heard, the words after it); (None, transcript) without a wake phrase."""
        if self.wake is None:
            return None, transcript
        if transcript == self.wake or transcript.startswith(self.wake + " "):
            return True, transcript[len(self.wake) :].strip()
        return False, transcript
