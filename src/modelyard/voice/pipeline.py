"""``VoicePipeline``: a registered pipeline version run on one utterance, each stage timed.

audio (16 kHz mono) → speech to text (``stt.py``) → wake phrase → intent (a registered text
classifier) → answer (``answer.py``) → speech (``tts.py``). The answer is the JSON the served
pipeline returns (and the console's playground shows): transcript, wake_phrase_heard, intent,
confidence, answer, slots, audio (base64 WAV) and timings_ms per stage.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelyard.store.pipelines import PipelineStore, PipelineVersion
from modelyard.voice.answer import Answerer
from modelyard.voice.spec import PipelineSpec
from modelyard.voice.stt import LM_FILE, Recognizer
from modelyard.voice.tts import Speaker

__all__ = ["VoicePipeline", "NOTHING_HEARD", "NO_WAKE_PHRASE"]

NOTHING_HEARD = "Sorry, I did not hear anything."
NO_WAKE_PHRASE = "No wake phrase heard: start with {wake!r}."


class VoicePipeline:
    """The stages of one pipeline version, loaded once."""

    kind = "pipeline"  # what the serving app tells it from a Predictor by

    def __init__(self, version: PipelineVersion, home: Path | str | None = None) -> None:
        from modelyard.predict import Predictor

        self.version = version
        self.name, self.number, self.ref = version.name, version.version, version.ref
        self.spec = PipelineSpec.model_validate({k: v for k, v in version.spec.items() if k != "built"})
        stages = self.spec.stages
        self.sample_rate = stages.speech_to_text.sample_rate
        self.intent_model = Predictor.load(stages.intent.model, home=home)  # pinned NAME:N
        lm = version.file(LM_FILE) if stages.speech_to_text.language_model == "domain" else None
        self.recognizer = Recognizer(lm, stages.speech_to_text.wake_phrase)
        self.answerer = Answerer(stages.answer.templates, stages.answer.default)  # type: ignore[arg-type]
        self.speaker = Speaker(stages.speech.voice, stages.speech.rate)

    @classmethod
    def load(cls, ref: str, *, home: Path | str | None = None) -> VoicePipeline:
        return cls(PipelineStore(home).get(ref), home=home)

    def stages(self) -> dict[str, str]:
        """What runs each stage: an engine or a model version."""
        s = self.spec.stages
        lm = "domain n-gram" if s.speech_to_text.language_model == "domain" else "bundled en-us"
        return {
            "speech_to_text": f"pocketsphinx {_version('pocketsphinx')} en-us, {lm} language model",
            "intent": self.intent_model.ref,
            "answer": f"templates ({len(s.answer.templates)} intents)",
            "speech": f"flite voice {s.speech.voice}",
        }

    def intent(self, text: str) -> tuple[str, float]:
        """(label, probability) of the intent model for ``text``."""
        batch = np.empty(1, dtype=object)
        batch[0] = text
        probs = self.intent_model.predict(batch)
        label = self.intent_model.labels_from(probs)[0]
        return str(label), float(probs[0].max())

    def run(self, samples: np.ndarray) -> dict[str, Any]:
        """The answer to one utterance: float32 mono samples at ``sample_rate``."""
        timings: dict[str, float] = {}
        start = tick = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal tick
            now = time.perf_counter()
            timings[stage] = round((now - tick) * 1000.0, 3)
            tick = now

        transcript = self.recognizer.transcribe(samples)
        heard, query = self.recognizer.split_wake(transcript)
        lap("speech_to_text")
        intent, confidence = (None, None) if heard is False or not query else self.intent(query)
        lap("intent")
        slots: dict[str, str] = {}
        if heard is False:
            answer = NO_WAKE_PHRASE.format(wake=self.recognizer.wake)
        elif not query:
            answer = NOTHING_HEARD
        else:
            answer, slots = self.answerer.answer(intent, query)
        lap("answer")
        wav = self.speaker.wav(answer)
        lap("speech")
        timings["total"] = round((time.perf_counter() - start) * 1000.0, 3)
        return {
            "transcript": transcript,
            "wake_phrase_heard": heard,
            "intent": intent,
            "confidence": confidence,
            "answer": answer,
            "slots": slots,
            "audio": {"format": "wav", "sample_rate": _wav_rate(wav), "base64": base64.b64encode(wav).decode()},
            "timings_ms": timings,
        }


def _wav_rate(wav: bytes) -> int:
    return int.from_bytes(wav[24:28], "little") if len(wav) >= 28 else 0  # RIFF fmt chunk: sample rate at byte 24


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"
