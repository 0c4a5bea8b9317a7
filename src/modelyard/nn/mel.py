"""Mel filterbanks and the DCT-II matrix of MFCCs, as plain numpy (pure functions).

The formulas are librosa's (``librosa.filters.mel``, ``librosa.feature.mfcc``), which follow
Slaney's Auditory Toolbox (1998) by default and the HTK book (Young et al.) with ``htk``:
Slaney's scale is linear below 1 kHz (200/3 Hz per mel) and logarithmic above it (27 mels per
factor 6.4); HTK's is ``2595 log10(1 + f / 700)``. Tested against librosa 0.11's values.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hz_to_mel", "mel_to_hz", "mel_filterbank", "dct_matrix"]

_F_SP = 200.0 / 3  # Slaney: Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP  # 15 mels
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray, htk: bool = False) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    linear = hz / _F_SP
    logs = _MIN_LOG_MEL + np.log(np.maximum(hz, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, logs, linear)


def mel_to_hz(mel: np.ndarray, htk: bool = False) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    linear = _F_SP * mel
    logs = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(mel, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(mel >= _MIN_LOG_MEL, logs, linear)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    f_min: float = 0.0,
    f_max: float | None = None,
    *,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Triangular filters ``[n_mels, n_fft // 2 + 1]`` over the STFT's frequency bins.

    ``norm="slaney"`` scales each triangle to unit area (constant energy per channel)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    fft_freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(f_min, htk), hz_to_mel(f_max, htk), n_mels + 2), htk)
    widths = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_freqs[2 : n_mels + 2] - mel_freqs[:n_mels]))[:, None]
    return weights.astype(np.float32)


def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II ``[n_out, n_in]`` (scipy.fft.dct(x, type=2, norm="ortho")'s first n_out rows)."""
    n = np.arange(n_in)
    k = np.arange(n_out)[:, None]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)
