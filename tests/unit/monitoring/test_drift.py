"""Drift statistics of a window against a reference: hand-computed PSI and Holm, scipy's own answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from modelyard.monitoring.drift import bonferroni, cauchy_combination, holm, output_shift, psi, window_report
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


def test_the_cauchy_combination_matches_its_closed_form_and_keeps_an_agreed_p() -> None:
    for p in ([0.01, 0.2], [0.5, 0.5, 0.9], [1e-4, 0.6, 0.03]):
        t = np.mean(np.tan((0.5 - np.array(p)) * np.pi))
        assert cauchy_combination(np.array(p)) == pytest.approx(0.5 - math.atan(t) / math.pi, rel=1e-9)
    for p in (0.3, 0.04, 1e-6):  # tests that agree: the combination is their p
        assert cauchy_combination(np.array([p, p])) == pytest.approx(p, rel=1e-6)
    # a test at p = 1 (Bonferroni's cap) does not silence the other: it counts as 1 - 1e-3
    assert cauchy_combination(np.array([1.0, 1e-10])) < 1e-6
    assert cauchy_combination(np.array([1.0, 0.02])) > 0.5  # a weak second test does not carry it alone
    t_cap = (math.tan((0.5 - 0.999) * math.pi) + math.tan((0.5 - 1e-6) * math.pi)) / 2
    assert cauchy_combination(np.array([1.0, 1e-6])) == pytest.approx(0.5 - math.atan(t_cap) / math.pi, rel=1e-9)
    # below 1e-15 the tangent's limit 1 / (p pi) is used; the combined p is continuous across the switch
    assert cauchy_combination(np.array([1e-20, 1.0])) == pytest.approx(2e-20, rel=1e-3)
    assert cauchy_combination(np.array([0.999e-15, 0.5])) == pytest.approx(
        cauchy_combination(np.array([1.001e-15, 0.5])), rel=1e-2
    )


def test_output_shift_joins_per_class_ks_and_the_entropy_t_test_as_scipy_computes_them() -> None:
    rng = np.random.default_rng(3)
    reference = rng.dirichlet([0.3] * 5, size=2000)  # sure of one class
    window = 0.6 * rng.dirichlet([0.3] * 5, size=100) + 0.4 * rng.dirichlet([3.0] * 5, size=100)  # less sure
    report = output_shift(_reference(rng.normal(size=(10, 2)), reference), window)
    ref32 = reference.astype(np.float32).astype(np.float64)  # the reference is stored in float32
    ks = [stats.ks_2samp(ref32[:, k], window[:, k]).pvalue for k in range(5)]
    assert report["per_class_p"] == pytest.approx(ks)
    assert report["ks_p"] == pytest.approx(min(1.0, 5 * min(ks)))

    def entropy(o: np.ndarray) -> np.ndarray:
        return np.array([-sum(v * math.log(max(v, 1e-12)) for v in row) for row in o])

    t = stats.ttest_ind(entropy(ref32), entropy(window), equal_var=False).pvalue
    assert report["entropy_p"] == pytest.approx(t, rel=1e-6)
    combined = (
        0.5 - math.atan((math.tan((0.5 - report["ks_p"]) * math.pi) + math.tan((0.5 - t) * math.pi)) / 2) / math.pi
    )
    assert report["p_value"] == pytest.approx(combined, rel=1e-6)
    assert report["drift"] is (report["p_value"] < 0.05) and report["entropy_p"] < 1e-6


def test_outputs_that_are_not_class_probabilities_get_the_ks_test_alone() -> None:
    rng = np.random.default_rng(4)
    ref = _reference(rng.normal(size=(10, 2)), rng.normal(size=(500, 1)))  # a regression's outputs
    window = rng.normal(loc=0.5, size=(100, 1))
    report = output_shift(ref, window)
    expected = stats.ks_2samp(ref.outputs.numpy().astype(np.float64)[:, 0], window[:, 0]).pvalue
    assert report["entropy_p"] is None and report["test"] == "ks per class"
    assert report["p_value"] == report["ks_p"] == pytest.approx(expected) and report["drift"] is bool(expected < 0.05)


def test_output_shift_false_alarms_stay_near_alpha_on_unshifted_windows() -> None:
    rng = np.random.default_rng(5)
    ref = _reference(rng.normal(size=(10, 2)), rng.dirichlet([0.3] * 10, size=5000))
    alarms = [output_shift(ref, rng.dirichlet([0.3] * 10, size=100))["drift"] for _ in range(400)]
    assert 0.02 <= np.mean(alarms) <= 0.08  # 5% expected; 400 windows: 95% of draws within 2.9-7.1%
