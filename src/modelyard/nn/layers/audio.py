"""Audio features as layers: ``logmel`` and ``mfcc`` turn raw samples ``[L]`` into spectrograms.

Being layers, they are rebuilt from the spec with the model, run on the training device, and
are exported with it to ONNX, so a served model takes raw audio. The short-time Fourier
transform is a strided conv1d with a fixed windowed DFT basis (equal to ``torch.stft`` with
``center=True, pad_mode="constant"``, tested): it exports to every ONNX opset, which
``torch.stft`` does not (STFT is opset 17 and the TorchScript exporter has no complex tensors).
Output ``layout: image`` is ``[1, n_mels, frames]`` for conv2d; ``frames`` is ``[frames, n_mels]``
for the recurrent and attention layers. Frames: ``1 + L // hop``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, model_validator
from torch import nn

from modelyard._validation import StrictModel
from modelyard.components import ComponentSpec
from modelyard.errors import ShapeError
from modelyard.nn.layers._common import LAYERS, Shape, require_rank
from modelyard.nn.mel import dct_matrix, mel_filterbank

__all__ = ["LogMelOptions", "MfccOptions", "LogMel", "input_sample_rate"]


class LogMelOptions(StrictModel):
    sample_rate: PositiveInt = 16000
    n_fft: PositiveInt = 512
    win_length: PositiveInt | None = None  # samples; the Hann window is n_fft long by default
    hop_length: PositiveInt | None = None  # samples; win_length // 4 by default (librosa's default)
    n_mels: PositiveInt = 40
    f_min: float = Field(0.0, ge=0.0)
    f_max: float | None = Field(None, gt=0.0)
    htk: bool = False  # the HTK mel scale instead of Slaney's (librosa's default)
    eps: float = Field(1e-6, gt=0.0)  # log(mel power + eps)
    layout: Literal["image", "frames"] = "image"

    @model_validator(mode="after")
    def _bands(self) -> LogMelOptions:
        if (self.win_length or self.n_fft) > self.n_fft:
            raise ValueError(f"expected win_length <= n_fft ({self.n_fft}), received {self.win_length}")
        f_max = self.f_max if self.f_max is not None else self.sample_rate / 2
        if not self.f_min < f_max <= self.sample_rate / 2:
            raise ValueError(
                f"expected f_min < f_max <= sample_rate / 2 ({self.sample_rate / 2:g} Hz), "
                f"received f_min {self.f_min:g} and f_max {f_max:g}"
            )
        return self


class MfccOptions(LogMelOptions):
    n_mfcc: PositiveInt = 13


class LogMel(nn.Module):
    """``[N, L]`` float samples → ``[N, n_mels, frames]`` natural-log mel power (then the layout)."""

    def __init__(self, opts: LogMelOptions, n_mfcc: int | None = None) -> None:
        super().__init__()
        n_fft, win = opts.n_fft, opts.win_length or opts.n_fft
        self.hop = opts.hop_length or win // 4
        self.n_fft, self.eps, self.layout = n_fft, opts.eps, opts.layout
        window = torch.zeros(n_fft, dtype=torch.float64)
        left = (n_fft - win) // 2  # torch.stft centres a shorter window in the frame
        window[left : left + win] = torch.hann_window(win, periodic=True, dtype=torch.float64)
        n = torch.arange(n_fft, dtype=torch.float64)
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
        angle = 2 * math.pi * k * n / n_fft
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window  # [2 * bins, n_fft]
        # Derived from the spec alone, so not stored with the weights (persistent=False).
        self.register_buffer("basis", basis.float()[:, None, :], persistent=False)
        fb = mel_filterbank(opts.sample_rate, n_fft, opts.n_mels, opts.f_min, opts.f_max, htk=opts.htk)
        self.register_buffer("filters", torch.from_numpy(fb), persistent=False)  # [n_mels, bins]
        dct = torch.from_numpy(dct_matrix(n_mfcc, opts.n_mels)) if n_mfcc else None
        self.register_buffer("dct", dct, persistent=False)

    def power(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, L]`` → STFT power ``[N, bins, frames]`` (torch.stft, center=True, zero padding)."""
        half = self.n_fft // 2
        spec = F.conv1d(F.pad(x[:, None, :], (half, half)), self.basis, stride=self.hop)
        bins = spec.shape[1] // 2
        return spec[:, :bins] ** 2 + spec[:, bins:] ** 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mel = torch.matmul(self.filters, self.power(x))  # [N, n_mels, frames]
        out = torch.log(mel + self.eps)
        if self.dct is not None:  # MFCC: DCT-II of the log-mel power in dB (librosa.feature.mfcc)
            out = torch.matmul(self.dct, out * (10.0 / math.log(10.0)))
        return out[:, None] if self.layout == "image" else out.transpose(1, 2)

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop={self.hop}, bands={self.filters.shape[0]}, layout={self.layout}"


def _build(opts: LogMelOptions, in_shape: Shape, field: str, name: str, n_mfcc: int | None) -> tuple[nn.Module, Shape]:
    require_rank(in_shape, (1,), field, name, "raw audio samples [L]", "use an audio data source (audio or fsdd)")
    module = LogMel(opts, n_mfcc)
    frames = 1 + in_shape[0] // module.hop
    bands = n_mfcc or opts.n_mels
    return module, ((1, bands, frames) if opts.layout == "image" else (frames, bands))


@LAYERS.component("logmel", "log_mel", "melspectrogram", "log_mel_spectrogram", options=LogMelOptions)
def logmel(opts: LogMelOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Raw samples ``[L]`` → log-mel spectrogram ``[1, n_mels, frames]`` (or ``[frames, n_mels]``)."""
    return _build(opts, in_shape, field, "logmel", None)


@LAYERS.component("mfcc", options=MfccOptions)
def mfcc(opts: MfccOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Raw samples ``[L]`` → MFCCs ``[1, n_mfcc, frames]`` (or ``[frames, n_mfcc]``)."""
    if opts.n_mfcc > opts.n_mels:
        raise ShapeError(
            f"Invalid value for `{field}.n_mfcc`: expected at most n_mels ({opts.n_mels}), received {opts.n_mfcc}",
            field=f"{field}.n_mfcc",
        )
    return _build(opts, in_shape, field, "mfcc", opts.n_mfcc)


def input_sample_rate(layers: Sequence[ComponentSpec]) -> int | None:
    """The sample rate a network takes raw audio at (its first layer's, when that is ``logmel`` or
    ``mfcc``), else None: the server then decodes WAV uploads for it and refuses them for others."""
    if layers and layers[0].type in ("logmel", "mfcc"):
        return int(layers[0].options.get("sample_rate", LogMelOptions.model_fields["sample_rate"].default))
    return None
