"""Decoding WAV/FLAC audio from untrusted bytes: the one place every audio reader goes through.

The ``audio`` and ``fsdd`` data sources, prediction inputs and HTTP uploads call
``decode_audio``. The format is picked from the file's own signature (RIFF/WAVE or fLaC, never
libsndfile's guessing among its ~25 formats); the duration and sample rate are checked from the
header before any sample is decoded, so a 10-minute upload costs nothing. Samples come back as
float32 mono in [-1, 1] (channels averaged). Every failure is one line naming the file, what was
expected and what was received; libsndfile's own messages (which quote Python objects) never
get through, and neither does any of the file's content.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.errors import ModelyardError, optional_dependency

__all__ = ["AudioLimits", "decode_audio", "resample", "fit_length", "is_audio"]


@dataclass(frozen=True)
class AudioLimits:
    """What an audio file may be: ``max_seconds`` of audio; ``sample_rate`` when it is fixed
    (``resample`` False: a file at another rate is refused, True: it is resampled to it)."""

    max_seconds: float = 600.0
    sample_rate: int | None = None
    resample: bool = True


def is_audio(data: bytes) -> bool:
    """True for bytes that start like a WAV or FLAC file."""
    return _format(data) is not None


def _format(data: bytes) -> str | None:
    if len(data) >= 12 and data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return "WAV"
    if data[:4] == b"fLaC":
        return "FLAC"
    return None


def _soundfile() -> Any:
    with optional_dependency("audio", "Decoding audio"):
        import soundfile
    return soundfile


def decode_audio(
    data: bytes,
    *,
    source: str,
    limits: AudioLimits,
    error: type[ModelyardError],
    field: str | None = None,
    too_long: type[ModelyardError] | None = None,
) -> tuple[np.ndarray, int]:
    """``(samples float32 [n], sample_rate)`` of WAV/FLAC ``data``, or ``error`` (one line).

    ``too_long`` is the error class for a file over ``limits`` (duration, sample rate): a
    request that is well formed but over a limit is a 422, not a 400.
    """
    over = too_long or error
    if not data:
        raise error(f"Cannot decode audio {source}: expected a WAV or FLAC file, received an empty file", field=field)
    kind = _format(data)
    if kind is None:
        raise error(
            f"Cannot decode audio {source}: expected a WAV or FLAC file (RIFF/WAVE or fLaC signature), "
            "received something else",
            field=field,
        )
    sf = _soundfile()
    try:
        # libsndfile refuses a format for existing files; the signature check above means it finds WAV or FLAC.
        with sf.SoundFile(io.BytesIO(data)) as f:
            rate, frames, channels = int(f.samplerate), int(f.frames), int(f.channels)
            if f.format != kind or rate <= 0 or channels <= 0:
                raise error(f"Cannot decode audio {source}: the {kind} header is corrupt", field=field)
            seconds = frames / rate
            if seconds > limits.max_seconds:
                raise over(
                    f"Audio {source} is too long: expected at most {limits.max_seconds:g} s, received {seconds:.1f} s",
                    field=field,
                )
            if limits.sample_rate is not None and rate != limits.sample_rate and not limits.resample:
                raise over(
                    f"Invalid sample rate of audio {source}: expected {limits.sample_rate} Hz, received {rate} Hz; "
                    f"resample it to {limits.sample_rate} Hz first",
                    field=field,
                )
            samples = f.read(dtype="float32", always_2d=True)
    except ModelyardError:
        raise
    except (RuntimeError, ValueError, TypeError, OSError, EOFError) as exc:  # LibsndfileError is a RuntimeError
        raise error(
            f"Cannot decode audio {source}: corrupt or unsupported {kind} data ({type(exc).__name__})", field=field
        ) from None
    if len(samples) == 0:
        raise error(f"Cannot decode audio {source}: the {kind} file holds no samples (zero length)", field=field)
    mono = samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0]
    if not np.isfinite(mono).all():
        raise error(f"Cannot decode audio {source}: the {kind} file holds non-finite samples", field=field)
    if limits.sample_rate is not None and rate != limits.sample_rate:
        mono, rate = resample(mono, rate, limits.sample_rate), limits.sample_rate
    return np.ascontiguousarray(mono, dtype=np.float32), rate


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``samples`` at ``rate`` Hz resampled to ``target`` Hz (polyphase filter, scipy)."""
    if rate == target:
        return samples
    from math import gcd

    with optional_dependency("audio", "Resampling audio"):
        from scipy.signal import resample_poly
    g = gcd(rate, target)
    return resample_poly(samples, target // g, rate // g).astype(np.float32)


def fit_length(samples: np.ndarray, length: int, align: str = "start") -> np.ndarray:
    """``samples`` zero-padded or trimmed to ``length``: ``align`` "start" keeps the beginning
    (pads at the end), "center" keeps the middle (pads both sides)."""
    n = len(samples)
    if n == length:
        return samples
    if n > length:
        start = (n - length) // 2 if align == "center" else 0
        return samples[start : start + length]
    left = (length - n) // 2 if align == "center" else 0
    out = np.zeros(length, dtype=samples.dtype)
    out[left : left + n] = samples
    return out
