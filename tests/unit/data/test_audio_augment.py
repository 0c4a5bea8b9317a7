"""audio_augment on [N, L] batches: each transform against a plain reference, reproducible, training only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelyard.data.audio_augment import AudioAugmentOptions, augment_audio
from modelyard.data.pipeline import Pipeline
from modelyard.data.preprocess import PREPROCESSORS
from modelyard.errors import DataError, SpecError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_shift_moves_each_sample_by_whole_samples_and_zero_fills() -> None:
    x = torch.arange(1, 101, dtype=torch.float32).repeat(8, 1)
    out = augment_audio(x, _gen(), AudioAugmentOptions(sample_rate=100, shift=0.1))
    for row in out:
        nz = torch.nonzero(row).flatten()
        offset = int(row[nz[0]]) - 1 - int(nz[0])  # output i holds input i - offset → value i - offset + 1
        assert -10 <= offset <= 10
        expected = torch.zeros(100)
        for i in range(100):
            if 0 <= i + offset < 100:
                expected[i] = i + offset + 1
        assert torch.equal(row, expected)


def test_gain_scales_within_the_range_and_speed_resamples_a_tone() -> None:
    t = torch.arange(8000) / 8000
    x = torch.sin(2 * torch.pi * 200 * t).repeat(6, 1)
    gained = augment_audio(x, _gen(), AudioAugmentOptions(gain_db=6.0))
    ratio = gained.abs().amax(1) / x.abs().amax(1)
    assert torch.all(ratio >= 10 ** (-6 / 20) - 1e-6) and torch.all(ratio <= 10 ** (6 / 20) + 1e-6)
    assert ratio.std() > 0  # each sample draws its own gain
    fast = augment_audio(x, _gen(3), AudioAugmentOptions(speed=0.2))
    for row in fast:  # a speed factor f turns 200 Hz into 200·f Hz, with f in [0.8, 1.2]
        spectrum = np.abs(np.fft.rfft(row[:4000].numpy()))
        assert 160 - 2 <= np.argmax(spectrum) * 2 <= 240 + 2


def test_noise_has_the_drawn_snr_and_runs_are_reproducible() -> None:
    x = torch.sin(torch.linspace(0, 600, 8000)).repeat(64, 1)
    opts = AudioAugmentOptions(snr_db=(20.0, 20.0))
    out = augment_audio(x, _gen(), opts)
    noise = out - x
    noisy = noise.abs().amax(1) > 0
    assert 10 < int(noisy.sum()) < 54  # half the samples, on average
    snr = 10 * torch.log10(x[noisy].pow(2).mean(1) / noise[noisy].pow(2).mean(1))
    assert torch.allclose(snr, torch.full_like(snr, 20.0), atol=0.3)
    assert torch.equal(out, augment_audio(x, _gen(), opts)) and not torch.equal(out, augment_audio(x, _gen(1), opts))


def test_the_step_augments_training_batches_only_and_needs_raw_audio() -> None:
    steps = [PREPROCESSORS.parse({"audio_augment": {"gain_db": 3}}, field="data.preprocess[0]")]
    x = np.random.default_rng(0).standard_normal((4, 800)).astype(np.float32)
    pipe = Pipeline.fit(steps, x, kind="audio")
    np.testing.assert_array_equal(pipe.transform_x(x), x)  # evaluation and prediction: unchanged
    batch = torch.from_numpy(x)
    assert not torch.equal(pipe.augmenter()(batch, _gen()), batch)
    with pytest.raises(DataError, match=r"`data.preprocess\[0\]`.*raw audio samples shaped \[L\]"):
        Pipeline.fit(steps, np.zeros((2, 1, 28, 28), np.float32))
    with pytest.raises(SpecError, match="at least one of `shift`, `gain_db`, `speed` or `snr_db`"):
        PREPROCESSORS.parse("audio_augment", field="data.preprocess[0]")
