"""Train-time augmentation of raw audio batches ``[N, L]``: noise, time shift, gain and speed.

Like ``augment`` (images), the ``audio_augment`` step changes no stored data: the training loop
calls its augmenter on each training batch, on the training device, with its own
``torch.Generator``; evaluation and prediction never augment. Each sample draws its own
values: a speed factor in ``[1 - speed, 1 + speed]`` (resampled by linear interpolation, so
pitch moves with tempo, as sox's ``speed``; the length stays ``L``, cut or zero-padded at the
end), a shift of up to ``shift`` seconds either way (zero-filled), a gain in
``[-gain_db, +gain_db]`` dB and gaussian noise at a signal-to-noise ratio drawn from
``[snr_db[0], snr_db[1]]`` dB of the sample's own power (applied to half the samples).
"""

from __future__ import annotations

import torch
from pydantic import Field, PositiveInt, model_validator

from modelyard._validation import StrictModel
from modelyard.data.step import PREPROCESSORS, Augment, FitContext, Step
from modelyard.errors import DataError

__all__ = ["AudioAugmentOptions", "AudioAugmentStep", "augment_audio"]


class AudioAugmentOptions(StrictModel):
    sample_rate: PositiveInt = 16000  # to turn `shift` seconds into samples
    shift: float = Field(0.0, ge=0.0, le=10.0)  # seconds
    gain_db: float = Field(0.0, ge=0.0, le=40.0)
    speed: float = Field(0.0, ge=0.0, lt=0.5)
    snr_db: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _something(self) -> AudioAugmentOptions:
        if self.shift == 0.0 and self.gain_db == 0.0 and self.speed == 0.0 and self.snr_db is None:
            raise ValueError(
                "expected at least one of `shift`, `gain_db`, `speed` or `snr_db`; this step would do nothing"
            )
        if self.snr_db is not None and self.snr_db[0] > self.snr_db[1]:
            raise ValueError(f"expected `snr_db` as [low, high], received {list(self.snr_db)}")
        return self


def _uniform(n: int, low: float, high: float, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    # Drawn on the generator's device (a CPU generator cannot fill a CUDA tensor), then moved.
    return (low + (high - low) * torch.rand(n, generator=gen, device=gen.device)).to(device)


def _speed(x: torch.Tensor, speed: float, gen: torch.Generator) -> torch.Tensor:
    n, length = x.shape
    factor = _uniform(n, 1.0 - speed, 1.0 + speed, gen, x.device)[:, None]  # [N, 1]
    pos = torch.arange(length, device=x.device, dtype=x.dtype)[None, :] * factor  # output i reads input i·factor
    left = pos.floor().long()
    frac = pos - left
    inside = left < length - 1
    left = left.clamp(max=length - 2)
    a, b = x.gather(1, left), x.gather(1, left + 1)
    return torch.where(inside, a + frac * (b - a), torch.zeros((), dtype=x.dtype, device=x.device))


def _shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    n, length = x.shape
    s = min(max_shift, length - 1)
    offset = torch.randint(-s, s + 1, (n,), generator=gen, device=gen.device).to(x.device)
    src = torch.arange(length, device=x.device)[None, :] - offset[:, None]  # output i reads input i - offset
    valid = (src >= 0) & (src < length)
    return torch.where(valid, x.gather(1, src.clamp(0, length - 1)), torch.zeros((), dtype=x.dtype, device=x.device))


def augment_audio(x: torch.Tensor, gen: torch.Generator, opts: AudioAugmentOptions) -> torch.Tensor:
    """One augmented copy of the batch ``x`` [N, L] (the input is not modified)."""
    if opts.speed:
        x = _speed(x, opts.speed, gen)
    if opts.shift:
        x = _shift(x, round(opts.shift * opts.sample_rate), gen)
    if opts.gain_db:
        x = x * (10.0 ** (_uniform(len(x), -opts.gain_db, opts.gain_db, gen, x.device) / 20.0))[:, None]
    if opts.snr_db is not None:
        snr = _uniform(len(x), opts.snr_db[0], opts.snr_db[1], gen, x.device)
        power = x.pow(2).mean(dim=1)
        scale = torch.sqrt(power / 10.0 ** (snr / 10.0)) * (_uniform(len(x), 0.0, 1.0, gen, x.device) < 0.5)
        noise = torch.randn(x.shape, generator=gen, device=gen.device, dtype=x.dtype).to(x.device)
        x = x + scale[:, None] * noise
    return x


@PREPROCESSORS.component("audio_augment", "augment_audio", options=AudioAugmentOptions)
class AudioAugmentStep(Step):
    """Random speed, shift, gain and noise on raw audio training batches only."""

    def check_input_shape(self, shape: tuple[int, ...], ctx: FitContext) -> None:
        if len(shape) != 1:
            raise DataError(
                f"Invalid step `{ctx.field}`: audio_augment needs raw audio samples shaped [L], but the "
                f"preprocessed samples have shape {list(shape)}; use it with an audio source (audio or fsdd)",
                field=ctx.field,
            )

    def augmenter(self) -> Augment:
        opts = self.opts

        def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            return augment_audio(batch, generator, opts)

        return augment
