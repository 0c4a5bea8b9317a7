"""One window of served traffic against a version's training reference: quality, drift, output shift.

Per feature (the reduced columns of ``reference.reduce_features``): the two-sample KS test, a
chi-squared test on the reference's decile bins, PSI on the same bins and the Wasserstein
distance, all from ``scipy.stats``; the KS p-values are Holm-corrected over the features.
The model's outputs (``output_shift``): black-box shift detection as in Rabanser, Günnemann and
Lipton, "Failing Loudly" (NeurIPS 2019), which found it the best univariate detector: a KS test
per class against the reference's held-out outputs, Bonferroni-corrected over the classes. Where
the outputs are class probabilities, a Welch t-test on each row's entropy joins it: a shift the
model has not seen mostly makes it less sure of every class at once, which no single class's KS
test sees as well (on the Fashion-MNIST MLP with half the images moved 2 pixels it lifted
detection at 100 requests from 89% to 94-97%, benchmarks/results/monitor_bench.md). The two
p-values are joined by the Cauchy combination test (Liu and Xie, JASA 2020), which stays valid
however the two tests depend on each other (both read the same outputs); scipy has no such
combination (``combine_pvalues``' methods assume independent tests), so ``cauchy_combination``
is the formula on ``scipy.stats.cauchy``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from modelyard.monitoring.reference import Reference

__all__ = [
    "bonferroni",
    "cauchy_combination",
    "holm",
    "psi",
    "window_report",
    "output_shift",
    "feature_drift",
    "data_quality",
]

ALPHA = 0.05
_PSI_EPS = 1e-4  # an empty bin counts as this share, so PSI stays finite (the usual convention)
_PSI_BINS = 10
P_CAP = 1e-3  # cauchy_combination counts a p-value as at most 1 - P_CAP


def bonferroni(p: np.ndarray) -> np.ndarray:
    """p-values multiplied by their number, capped at 1."""
    p = np.asarray(p, dtype=float)
    return np.minimum(p * p.size, 1.0)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (uniformly more powerful than Bonferroni, same error rate)."""
    p = np.asarray(p, dtype=float)
    order = np.argsort(p)
    m = p.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(stepped, 1.0)
    return out


def _edges(reference: np.ndarray) -> np.ndarray:
    """Inner bin edges: the reference's deciles, repeated edges dropped (a constant column has none)."""
    return np.unique(np.quantile(reference, np.linspace(0, 1, _PSI_BINS + 1)[1:-1]))


def _counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)


def psi(reference: np.ndarray, current: np.ndarray, edges: np.ndarray | None = None) -> float:
    """Population stability index, sum over bins of (cur - ref) * ln(cur / ref) of the bin shares."""
    edges = _edges(reference) if edges is None else edges
    return _psi_counts(_counts(reference, edges), _counts(current, edges))


def _psi_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    ref = np.maximum(ref_counts / ref_counts.sum(), _PSI_EPS)
    cur = np.maximum(cur_counts / cur_counts.sum(), _PSI_EPS)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _chi2_p(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    from scipy.stats import chi2_contingency

    keep = (ref_counts + cur_counts) > 0
    if keep.sum() < 2:
        return 1.0  # one bin holds everything on both sides: nothing to compare
    return float(chi2_contingency(np.stack([ref_counts[keep], cur_counts[keep]]))[1])


@functools.lru_cache(maxsize=16)
def _columns(ref: Reference) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """The reference's sample in float64, each column's decile edges and its counts in them: computed once."""
    sample = ref.sample.numpy().astype(np.float64)
    edges = [_edges(sample[:, j]) for j in range(sample.shape[1])]
    return sample, edges, [_counts(sample[:, j], e) for j, e in enumerate(edges)]


def feature_drift(ref: Reference, window: np.ndarray, *, alpha: float = ALPHA) -> dict[str, Any]:
    """Per-feature KS (Holm-corrected), chi-squared, PSI and Wasserstein of ``window`` ([n, d]) against ``ref``."""
    from scipy.stats import ks_2samp, wasserstein_distance

    sample, edges, ref_counts = _columns(ref)
    finite = np.isfinite(window)
    whole = finite.all(axis=0)  # columns without NaN: one vectorised KS call for all of them
    ks = np.ones(sample.shape[1])
    if whole.any():
        ks[whole] = ks_2samp(sample[:, whole], window[:, whole], axis=0).pvalue
    rows = []
    for j in range(sample.shape[1]):
        r, c = sample[:, j], window[finite[:, j], j]
        if c.size == 0:
            rows.append({"feature": j, "ks_p": 1.0, "chi2_p": 1.0, "psi": 0.0, "wasserstein": 0.0})
            continue
        if not whole[j]:
            ks[j] = ks_2samp(r, c).pvalue
        rows.append(
            {
                "feature": j,
                "ks_p": float(ks[j]),
                "chi2_p": _chi2_p(ref_counts[j], _counts(c, edges[j])),
                "psi": _psi_counts(ref_counts[j], _counts(c, edges[j])),
                "wasserstein": float(wasserstein_distance(r, c)),
            }
        )
    adjusted = holm(np.array([row["ks_p"] for row in rows]))
    for row, p in zip(rows, adjusted):
        row["ks_p_holm"] = float(p)
    drifted = [row["feature"] for row in rows if row["ks_p_holm"] < alpha]
    return {
        "test": "ks",
        "correction": "holm",
        "alpha": alpha,
        "drift": bool(drifted),
        "drifted_features": drifted,
        "max_psi": max((row["psi"] for row in rows), default=0.0),
        "per_feature": rows,
    }


def cauchy_combination(p: np.ndarray) -> float:
    """The Cauchy combination of p-values (equal weights): valid under any dependence between them.

    ``T = mean(tan((1/2 - p) pi))`` is standard Cauchy when every null holds, whatever the
    correlation (Liu and Xie 2020); the combined p is its upper tail. For p below 1e-15 the
    tangent is taken as ``1 / (p pi)`` (its limit), which float rounding would otherwise lose. A p
    of 1 (a Bonferroni-capped KS) would add tan(-pi/2) = -infinity and silence every other test, so
    p-values count as at most ``1 - P_CAP``: then a test at p = 1 still lets one below ~1e-3 through.
    """
    from scipy.stats import cauchy

    p = np.clip(np.asarray(p, dtype=np.float64), 1e-300, 1.0 - P_CAP)
    t = np.where(p < 1e-15, 1.0 / (p * np.pi), np.tan((0.5 - p) * np.pi))
    return float(cauchy.sf(t.mean()))


def _entropy(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(probabilities, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def _class_probabilities(outputs: np.ndarray) -> bool:
    """Rows of at least two non-negative columns that sum to 1: a softmax, whose entropy means something."""
    return (
        outputs.shape[1] >= 2 and bool((outputs >= 0).all()) and bool(np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3))
    )


@functools.lru_cache(maxsize=16)
def _outputs(ref: Reference) -> np.ndarray:
    return ref.outputs.numpy().astype(np.float64)


def output_shift(ref: Reference, outputs: np.ndarray, *, alpha: float = ALPHA) -> dict[str, Any]:
    """Black-box shift detection on the model's outputs against the held-out reference (module docstring)."""
    from scipy.stats import ks_2samp, ttest_ind

    reference = _outputs(ref)
    p = np.atleast_1d(ks_2samp(reference, outputs, axis=0).pvalue)
    ks_p = float(bonferroni(p).min())
    report: dict[str, Any] = {"alpha": alpha, "ks_p": ks_p, "per_class_p": [float(v) for v in p]}
    if _class_probabilities(reference) and outputs.shape[0] >= 2:
        entropy_p = float(ttest_ind(_entropy(reference), _entropy(outputs), equal_var=False).pvalue)
        entropy_p = 1.0 if np.isnan(entropy_p) else entropy_p  # both constant: nothing to tell apart
        combined = cauchy_combination(np.array([ks_p, entropy_p]))
        report |= {
            "test": "ks per class + welch t on entropy",
            "correction": "bonferroni, cauchy combination",
            "entropy_p": entropy_p,
            "p_value": combined,
        }
    else:
        report |= {"test": "ks per class", "correction": "bonferroni", "entropy_p": None, "p_value": ks_p}
    report["drift"] = bool(report["p_value"] < alpha)
    return report


def data_quality(ref: Reference, window: np.ndarray) -> dict[str, Any]:
    """Missing (NaN) and out-of-training-range rates of the window, per feature and overall."""
    missing = np.isnan(window)
    lo, hi = ref.minimum.numpy(), ref.maximum.numpy()
    outside = ~missing & ((window < lo) | (window > hi))
    missing_rate = missing.mean(axis=0)
    outside_rate = outside.mean(axis=0)
    return {
        "rows": int(window.shape[0]),
        "missing_rate": float(missing.mean()),
        "missing_features": [int(j) for j in np.flatnonzero(missing_rate > ref.missing_rate.numpy())],
        "out_of_range_rate": float(outside.mean()),
        "out_of_range_features": [int(j) for j in np.flatnonzero(outside_rate > 0)],
    }


def window_report(ref: Reference, features: np.ndarray, outputs: np.ndarray, *, alpha: float = ALPHA) -> dict[str, Any]:
    """Quality, feature drift and output shift of one window (``features`` already reduced, ``[n, d]``)."""
    features = np.asarray(features, dtype=np.float64)
    outputs = np.asarray(outputs, dtype=np.float64)
    schema_ok = features.ndim == 2 and features.shape[1] == ref.features and outputs.shape[1:] == ref.outputs.shape[1:]
    if not schema_ok:
        return {
            "schema": {
                "ok": False,
                "expected_features": ref.features,
                "received_features": list(features.shape[1:]),
                "expected_outputs": list(ref.outputs.shape[1:]),
                "received_outputs": list(outputs.shape[1:]),
            }
        }
    return {
        "schema": {"ok": True, "features": ref.features, "outputs": int(ref.outputs.shape[1])},
        "quality": data_quality(ref, features),
        "features": feature_drift(ref, features, alpha=alpha),
        "outputs": output_shift(ref, outputs, alpha=alpha),
    }
