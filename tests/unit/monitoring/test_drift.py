"""Drift statistics of a window against a reference: hand-computed PSI and Holm, scipy's own answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from modelyard.monitoring.drift import bonferroni, holm, psi, window_report
from modelyard.monitoring.reference import Reference


def _reference(sample: np.ndarray, outputs: np.ndarray) -> Reference:
    t = torch.from_numpy(sample.astype(np.float32))
    return Reference(
        sample=t,
        quantiles=torch.quantile(t, torch.linspace(0, 1, 101), dim=0),
        minimum=t.min(dim=0).values,
        maximum=t.max(dim=0).values,
        missing_rate=torch.zeros(t.shape[1]),
        outputs=torch.from_numpy(outputs.astype(np.float32)),
        meta={},
    )


def test_psi_matches_the_hand_computed_sum_over_decile_bins() -> None:
    reference = np.arange(100, dtype=float)  # deciles at 9.9, 19.8, ...: ten bins of ten values each
    current = np.concatenate([np.full(50, 5.0), np.full(50, 95.0)])  # half in the first bin, half in the last
    # reference share 0.1 per bin; current 0.5, 0 (-> 1e-4) x 8, 0.5
    expected = 2 * (0.5 - 0.1) * math.log(0.5 / 0.1) + 8 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert psi(reference, current) == pytest.approx(expected, rel=1e-12)
    assert psi(reference, reference) == 0.0


def test_holm_and_bonferroni_match_hand_computed_adjustments() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(holm(p), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(bonferroni(p), [0.04, 0.16, 0.12, 0.02])
    assert bonferroni(np.array([0.5, 0.9])).tolist() == [1.0, 1.0]


def test_window_report_uses_scipy_statistics_and_flags_only_the_shifted_feature() -> None:
    rng = np.random.default_rng(0)
    sample = rng.normal(size=(1000, 3))
    outputs = rng.dirichlet(np.ones(4), size=1000)
    ref = _reference(sample, outputs)
    window = rng.normal(size=(300, 3))
    window[:, 1] += 0.5
    report = window_report(ref, window, rng.dirichlet(np.ones(4), size=300))
    rows = report["features"]["per_feature"]
    s = ref.sample.numpy().astype(np.float64)
    for j, row in enumerate(rows):
        assert row["ks_p"] == pytest.approx(stats.ks_2samp(s[:, j], window[:, j]).pvalue)
        assert row["wasserstein"] == pytest.approx(stats.wasserstein_distance(s[:, j], window[:, j]))
    assert report["features"]["drifted_features"] == [1]
    assert rows[1]["psi"] > 0.1 > rows[0]["psi"]
    assert report["outputs"]["drift"] is False  # outputs drawn from the same distribution
    assert report["quality"]["missing_rate"] == 0.0


def test_output_shift_is_detected_and_quality_counts_nan_and_out_of_range_values() -> None:
    rng = np.random.default_rng(1)
    ref = _reference(rng.uniform(size=(500, 2)), rng.dirichlet([1, 1, 1], size=500))
    window = rng.uniform(size=(200, 2))
    window[:10, 0] = np.nan
    window[10:30, 1] = 5.0  # above the training maximum
    report = window_report(ref, window, rng.dirichlet([5, 1, 1], size=200))
    assert report["outputs"]["drift"] is True and report["outputs"]["p_value"] < 1e-6
    quality = report["quality"]
    assert quality["missing_rate"] == pytest.approx(10 / 400)
    assert quality["missing_features"] == [0]
    assert quality["out_of_range_rate"] == pytest.approx(20 / 400)
    assert quality["out_of_range_features"] == [1]


def test_a_window_of_another_shape_is_a_schema_failure_not_a_crash() -> None:
    rng = np.random.default_rng(2)
    ref = _reference(rng.normal(size=(50, 3)), rng.dirichlet([1, 1], size=50))
    report = window_report(ref, rng.normal(size=(20, 5)), rng.dirichlet([1, 1], size=20))
    assert report["schema"] == {
        "ok": False,
        "expected_features": 3,
        "received_features": [5],
        "expected_outputs": [2],
        "received_outputs": [2],
    }
