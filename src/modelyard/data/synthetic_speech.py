"""Synthetic speech as extra training clips: words rendered by Debian's flite and espeak-ng voices.

``synthetic_speech: {engines: [flite, espeak-ng], voices: [...], per_class: N}`` on an audio
source (``fsdd``) renders ``per_class`` clips of each class's word ("zero" .. "nine"), cycling
through the voices; each clip gets its own speaking rate (both engines: flite's
``duration_stretch``, espeak-ng's words per minute) and, for espeak-ng, its own pitch, spread
evenly over ``rate`` and ``pitch`` (a golden-ratio sequence, so the same spec gives the same
clips on every machine, with no seed). Each rendering is cached as the engine's own WAV in the
home's ``cache/speech/`` folder, named by the sha256 of engine, voice, text and settings, so a
second run calls no engine. A clip is decoded like a recording (mono float32, resampled to the
source's ``sample_rate`` by scipy's polyphase filter), its leading and trailing silence cut
(the FSDD recordings are cut tightly too), and padded or trimmed to ``duration``.

The clips join the TRAINING split only: the source returns them as ``RawData.x_extra`` and
``prepare`` appends them after the test and validation splits are drawn, so no synthetic clip
is ever validated or tested on.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, PositiveInt, field_validator, model_validator

from modelyard._validation import StrictModel
from modelyard.audio_decode import AudioLimits, decode_audio, fit_length
from modelyard.errors import DataError
from modelyard.store import paths

__all__ = ["SyntheticSpeechOptions", "DIGIT_WORDS", "DEFAULT_VOICES", "Rendering", "plan", "render_clips"]

Engine = Literal["flite", "espeak-ng"]
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
#: Each engine's voices used when `voices` is not given. flite's awb_time speaks only clock times.
DEFAULT_VOICES: dict[str, tuple[str, ...]] = {
    "flite": ("kal", "kal16", "awb", "rms", "slt"),
    "espeak-ng": ("en-us", "en-us+f3", "en-gb+m3", "en-gb-scotland+f2", "en-029+m5", "en-gb-x-rp+f4", "en-us+klatt"),
}
DEBIAN_PACKAGE = {"flite": "flite", "espeak-ng": "espeak-ng"}
ESPEAK_WPM = 175  # espeak-ng's default speaking rate (words per minute), scaled by the drawn rate
GOLDEN = 0.6180339887498949  # (sqrt(5) - 1) / 2: the k-th clip's settings sit at frac(k·GOLDEN) of each range
SILENCE_DB = -35.0  # below the clip's peak: what is cut from both ends
FIELD = "data.synthetic_speech"


class SyntheticSpeechOptions(StrictModel):
    engines: list[Engine] = Field(default_factory=lambda: ["flite", "espeak-ng"], min_length=1)
    voices: list[str] | None = Field(None, min_length=1)  # names from `flite -lv` / `espeak-ng --voices=en` (+variant)
    per_class: PositiveInt = Field(20, le=1000)
    rate: tuple[float, float] = (0.8, 1.25)  # speaking-rate factors (1: the voice's own)
    pitch: tuple[int, int] = (30, 70)  # espeak-ng's pitch 0-99 (50: its default)

    @field_validator("engines")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"expected each engine once, received {value}")
        return value

    @model_validator(mode="after")
    def _ranges(self) -> SyntheticSpeechOptions:
        low, high = self.rate
        if not 0.5 <= low <= high <= 2.0:
            raise ValueError(f"expected `rate` as [low, high] within 0.5-2.0, received {list(self.rate)}")
        low, high = self.pitch
        if not 0 <= low <= high <= 99:
            raise ValueError(f"expected `pitch` as [low, high] within 0-99, received {list(self.pitch)}")
        return self


@dataclass(frozen=True)
class Rendering:
    """One clip to render: what the cache key is made of."""

    engine: str
    voice: str
    text: str
    rate: float
    pitch: int | None  # espeak-ng only

    def key(self) -> str:
        fields = {"engine": self.engine, "voice": self.voice, "text": self.text, "rate": self.rate, "pitch": self.pitch}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def binary(engine: str) -> str:
    """The engine's executable, or one line naming the Debian package that has it."""
    found = shutil.which(engine)
    if found is None:
        package = DEBIAN_PACKAGE[engine]
        raise DataError(
            f"Invalid value for `{FIELD}.engines`: {engine} is not installed (not found on PATH); "
            f"install the Debian package {package} (apt-get install {package}) or drop {engine!r} from the list",
            field=f"{FIELD}.engines",
        )
    return found


@cache
def _known_voices(engine: str, exe: str) -> tuple[frozenset[str], frozenset[str]]:
    """(voices, espeak-ng variants) the installed engine has."""
    if engine == "flite":
        out = subprocess.run([exe, "-lv"], capture_output=True, text=True, check=True, timeout=30).stdout
        return frozenset(out.split(":", 1)[-1].split()) - {"awb_time"}, frozenset()
    lines = subprocess.run([exe, "--voices=en"], capture_output=True, text=True, check=True, timeout=30).stdout
    # Columns: Pty Language Age/Gender VoiceName File; mbrola voices (mb/) need the separate mbrola package.
    voices = {r.split()[1] for r in lines.splitlines()[1:] if len(r.split()) > 4 and not r.split()[4].startswith("mb/")}
    lines = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, check=True, timeout=30).stdout
    variants = {r.split()[4].removeprefix("!v/") for r in lines.splitlines()[1:] if len(r.split()) > 4}
    return frozenset(voices), frozenset(variants)


def _resolve_voices(opts: SyntheticSpeechOptions) -> list[tuple[str, str]]:
    """[(engine, voice)] in spec order; each named voice must belong to one of the listed engines."""
    exes = {engine: binary(engine) for engine in opts.engines}
    if opts.voices is None:
        return [(engine, voice) for engine in opts.engines for voice in DEFAULT_VOICES[engine]]
    known = {engine: _known_voices(engine, exe) for engine, exe in exes.items()}
    resolved = []
    for i, name in enumerate(opts.voices):
        base, _, variant = name.partition("+")
        engine = next(
            (
                e
                for e, (voices, variants) in known.items()
                if base in voices and (not variant or (e == "espeak-ng" and variant in variants))
            ),
            None,
        )
        if engine is None:
            listed = "; ".join(f"{e}: {', '.join(sorted(v))}" for e, (v, _) in known.items())
            raise DataError(
                f"Invalid value for `{FIELD}.voices[{i}]`: expected a voice of {' or '.join(opts.engines)} "
                f"(espeak-ng voices take a variant as NAME+VARIANT, e.g. en-us+f3), received {name!r}; installed: {listed}",
                field=f"{FIELD}.voices",
            )
        resolved.append((engine, name))
    return resolved


def plan(opts: SyntheticSpeechOptions, words: tuple[str, ...] | list[str]) -> list[tuple[int, Rendering]]:
    """(class index, rendering) for ``per_class`` clips of every word, voices taken in turn."""
    voices = _resolve_voices(opts)
    out = []
    for label, word in enumerate(words):
        for k in range(opts.per_class):
            engine, voice = voices[k % len(voices)]
            # Offset by the class so that class c's k-th clip is not class c+1's in another word.
            step = ((k + 1 + label * opts.per_class) * GOLDEN) % 1.0
            rate = round(opts.rate[0] + (opts.rate[1] - opts.rate[0]) * step, 3)
            pitch = round(opts.pitch[0] + (opts.pitch[1] - opts.pitch[0]) * ((step + GOLDEN) % 1.0))
            out.append((label, Rendering(engine, voice, word, rate, pitch if engine == "espeak-ng" else None)))
    return out


def cache_dir() -> Path:
    """Where renderings are kept (the home's ``cache/speech``; safe to delete)."""
    return paths.home() / "cache" / "speech"


def _command(exe: str, r: Rendering, out: Path) -> list[str]:
    # The text is never read as an option (a spec chooses it for the audio source): flite takes the
    # argument after -t as text, a space first so a leading "-" stays text; espeak-ng's "--" ends its options.
    if r.engine == "flite":
        stretch = f"duration_stretch={1.0 / r.rate:.4f}"
        return [exe, "-voice", r.voice, "--setf", stretch, "-t", " " + r.text, "-o", str(out)]
    return [exe, "-v", r.voice, "-s", str(round(ESPEAK_WPM * r.rate)), "-p", str(r.pitch), "-w", str(out), "--", r.text]


def wav_bytes(r: Rendering) -> bytes:
    """The engine's WAV of ``r``, from the cache or rendered into it (written atomically)."""
    folder = cache_dir()
    cached = folder / f"{r.key()}.wav"
    if cached.is_file():
        return cached.read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".render.", suffix=".wav")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        done = subprocess.run(_command(binary(r.engine), r, tmp), capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or tmp.stat().st_size <= 44:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise DataError(
                f"Cannot render {r.text!r} with {r.engine} voice {r.voice!r} (`{FIELD}`): the engine exited with "
                f"{done.returncode}{': ' + detail[-1] if detail else ''}",
                field=FIELD,
            )
        os.replace(tmp, cached)
    finally:
        tmp.unlink(missing_ok=True)
    return cached.read_bytes()


def trim_silence(samples: np.ndarray, rate: int) -> np.ndarray:
    """Cut what lies below ``SILENCE_DB`` of the peak (in 10 ms frames) at both ends."""
    frame = max(1, rate // 100)
    n = len(samples) // frame
    if n == 0:
        return samples
    energy = np.sqrt((samples[: n * frame].reshape(n, frame) ** 2).mean(axis=1))
    loud = np.flatnonzero(energy > energy.max() * 10.0 ** (SILENCE_DB / 20.0))
    if len(loud) == 0:
        return samples
    return samples[loud[0] * frame : (loud[-1] + 1) * frame]


def render_clips(
    opts: SyntheticSpeechOptions, words: tuple[str, ...] | list[str], sample_rate: int, length: int, align: str
) -> tuple[np.ndarray, np.ndarray]:
    """float32 clips ``[len(words)·per_class, length]`` at ``sample_rate`` and their class indexes."""
    jobs = plan(opts, words)
    limits = AudioLimits(sample_rate=sample_rate, resample=True)
    x = np.empty((len(jobs), length), dtype=np.float32)
    for i, (_, r) in enumerate(jobs):
        samples, _ = decode_audio(
            wav_bytes(r), source=f"{r.engine} {r.voice} {r.text!r}", limits=limits, error=DataError, field=FIELD
        )
        x[i] = fit_length(trim_silence(samples, sample_rate), length, align)
    return x, np.asarray([label for label, _ in jobs], dtype=np.int64)
