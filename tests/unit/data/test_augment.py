"""Train-time augmentation: shapes, determinism, and each transform against a reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelyard.data import PREPROCESSORS, Pipeline
from modelyard.data.augment import augment_batch
from modelyard.errors import DataError, SpecError


def _batch(n: int = 8, c: int = 1, h: int = 6, w: int = 5) -> torch.Tensor:
    return torch.arange(1, n * c * h * w + 1, dtype=torch.float32).reshape(n, c, h, w)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Reference translation of one [C, H, W] sample with zero fill, by explicit loops."""
    out = torch.zeros_like(x)
    _, h, w = x.shape
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[:, i, j] = x[:, i - dy, j - dx]
    return out


def test_same_generator_seed_same_batch_other_seed_differs() -> None:
    x = _batch()
    kwargs = {"flip": "both", "shift": 2, "noise": 0.1}
    a = augment_batch(x, _gen(0), **kwargs)
    b = augment_batch(x, _gen(0), **kwargs)
    c = augment_batch(x, _gen(1), **kwargs)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)  # pixels change
    assert torch.equal(x, _batch())  # the input batch is not modified


def test_horizontal_flip_flips_some_samples_whole() -> None:
    x = _batch(n=32)
    out = augment_batch(x, _gen(3), flip="horizontal")
    flipped = [torch.equal(o, s.flip(-1)) for o, s in zip(out, x)]
    kept = [torch.equal(o, s) for o, s in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 0 < sum(flipped) < 32


def test_vertical_flip() -> None:
    x = _batch(n=32)
    out = augment_batch(x, _gen(4), flip="vertical")
    assert all(torch.equal(o, s.flip(-2)) or torch.equal(o, s) for o, s in zip(out, x))
    assert not torch.equal(out, x)


def test_shift_matches_reference_translation() -> None:
    x = _batch(n=12, c=2)
    out = augment_batch(x, _gen(5), shift=2)
    moved = 0
    for o, s in zip(out, x):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(o, _shifted(s, dy, dx))]
        assert matches, "each sample must be a zero-filled translation by at most 2 pixels"
        moved += matches[0] != (0, 0)
    assert moved > 0


def test_noise_has_the_requested_std() -> None:
    x = torch.zeros(64, 1, 16, 16)
    out = augment_batch(x, _gen(6), noise=0.5)
    assert abs(out.std().item() - 0.5) < 0.02 and abs(out.mean().item()) < 0.02


def test_pipeline_augmenter_only_for_training() -> None:
    x = np.random.default_rng(0).uniform(0, 255, size=(4, 784)).astype(np.float32)
    steps = [
        PREPROCESSORS.parse(s, field="data.preprocess")
        for s in ("scale", {"reshape": [1, 28, 28]}, {"augment": {"shift": 3}})
    ]
    pipe = Pipeline.fit(steps, x, kind="image")
    fn = pipe.augmenter()
    assert fn is not None
    features = pipe.transform_x(x)  # prediction/evaluation path: no augmentation
    np.testing.assert_array_equal(features, (x / 255).reshape(4, 1, 28, 28))
    batch = torch.from_numpy(features)
    out = fn(batch, _gen(0))
    assert out.shape == batch.shape and not torch.equal(out, batch)
    assert Pipeline.fit(steps[:2], x, kind="image").augmenter() is None


def test_flip_needs_image_shaped_samples() -> None:
    steps = [PREPROCESSORS.parse({"augment": {"flip": "horizontal"}}, field="data.preprocess[0]")]
    with pytest.raises(DataError, match=r"`data.preprocess\[0\]`.*\[C, H, W\].*reshape"):
        Pipeline.fit(steps, np.zeros((2, 784), np.float32))


def test_augment_without_any_option_is_spec_error() -> None:
    with pytest.raises(SpecError, match="at least one of"):
        PREPROCESSORS.parse("augment", field="data.preprocess[0]")
