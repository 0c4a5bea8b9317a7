"""Simulated monitor traffic: the shifts against hand-made images, the pool against the reference's own rows,
and (slow) the served checks of a trained Fashion-MNIST MLP: few false alarms, shifted windows detected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import binom, binomtest

from modelyard.monitoring.reference import OUTPUT_ROWS, build_reference, model_outputs, output_rows
from modelyard.monitoring.simulate import Tally, gaussian_noise, traffic_pool, translate_half
from modelyard.nn import build_model
from modelyard.spec import load_spec
from tests.conftest import EXAMPLES

FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_translate_half_moves_half_the_images_two_pixels_zero_filled() -> None:
    images = np.arange(6 * 5 * 5, dtype=np.float64).reshape(6, 25) + 1  # no zero pixel: the fill shows
    out = translate_half(images, np.random.default_rng(0), direction=0)  # right
    grid, moved = images.reshape(6, 5, 5), out.reshape(6, 5, 5)
    right = np.zeros_like(grid)
    right[:, :, 2:] = grid[:, :, :-2]
    changed = [i for i in range(6) if not np.array_equal(moved[i], grid[i])]
    assert len(changed) == 3 and out.shape == images.shape
    for i in changed:
        np.testing.assert_array_equal(moved[i], right[i])
    up = translate_half(images, np.random.default_rng(1), direction=3).reshape(6, 5, 5)
    for i in (i for i in range(6) if not np.array_equal(up[i], grid[i])):
        np.testing.assert_array_equal(up[i, :-2], grid[i, 2:])
        assert not up[i, -2:].any()


def test_gaussian_noise_is_sigma_of_the_pixel_range_and_stays_in_it() -> None:
    images = np.full((200, 784), 128.0)  # mid-grey: the clipping at 0 and 255 never bites
    noisy = gaussian_noise(images, np.random.default_rng(0), sigma=0.05)
    assert abs((noisy - images).std() - 0.05 * 255) < 0.2 and abs((noisy - images).mean()) < 0.1
    assert gaussian_noise(np.zeros((50, 4)), np.random.default_rng(0)).min() == 0.0


def test_traffic_pool_leaves_out_exactly_the_rows_the_reference_stored_outputs_for() -> None:
    torch.manual_seed(0)
    network = build_model(load_spec(EXAMPLES / "fashion_mlp.yaml").model, loss="cross_entropy")
    heldout = torch.rand(OUTPUT_ROWS + 300, 784)
    ref = build_reference(network, torch.rand(50, 784), heldout, task="classification", seed=7)
    rows = output_rows(len(heldout), 7)
    np.testing.assert_allclose(ref.outputs.numpy(), model_outputs(network, heldout[rows]).numpy(), atol=1e-6)
    pool = traffic_pool(heldout.numpy(), seed=7)
    assert len(pool) == 300
    stored = {tuple(r) for r in heldout[rows].numpy().tolist()}
    assert not any(tuple(r) in stored for r in pool.tolist())


def test_tally_counts_alarms_per_check_with_scipy_exact_interval() -> None:
    tally = Tally()
    for alerts in (["output shift: p = 0.01"], [], ["feature drift: features [3]", "output shift: p = 0.02"], []):
        tally.add({"alerts": alerts})
    assert (tally.windows, tally.alarms, tally.rate) == (4, 2, 0.5)
    assert tally.by_check == {"output shift": 2, "feature drift": 1}
    want = binomtest(2, 4).proportion_ci(method="exact")
    assert tally.ci() == pytest.approx((want.low, want.high))


@pytest.mark.slow
@pytest.mark.skipif(not (FASHION / "t10k-images-idx3-ubyte.gz").is_file(), reason="dataset-fashion-mnist not installed")
def test_served_fashion_mlp_monitor_rarely_false_alarms_and_detects_shifts(home: Path) -> None:
    """benchmarks/monitor_bench.py, reduced: 40 unshifted windows, 20 of each shift (measured there: 100%)."""
    import modelyard
    from modelyard.data.mnist import IdxOptions, load_idx_dataset
    from modelyard.monitoring.reference import load_reference
    from modelyard.monitoring.simulate import check_window, window_monitor
    from modelyard.predict import Predictor

    result = modelyard.train(EXAMPLES / "fashion_mlp.yaml", home=home, progress=False)
    predictor = Predictor.load(result.model_ref, home=home)
    reference = load_reference(predictor.version)
    pool = traffic_pool(np.asarray(load_idx_dataset("fashion-mnist", IdxOptions()).x_test), seed=predictor.spec.seed)
    rng = np.random.default_rng(0)

    def alarms(size: int, windows: int, shift) -> int:
        monitor = window_monitor(predictor, reference, size)
        tally = Tally()
        for _ in range(windows):
            raw = pool[rng.choice(len(pool), size, replace=False)]
            tally.add(check_window(monitor, predictor, raw if shift is None else shift(raw, rng)))
        return tally.alarms

    # At the 5% the checks aim for, more than this many of 40 has a chance below 0.1%.
    assert alarms(100, 40, None) <= binom.isf(0.001, 40, 0.05)
    assert alarms(100, 20, lambda x, r: translate_half(x, r, direction=0)) >= 18
    assert alarms(500, 20, gaussian_noise) >= 18
