"""Which checks of a window report failed: the alerts of a served version, by check name.

``failed_checks`` names each failed check (``CHECKS``) with its one-line message and, where the
check is a test, its corrected p-value; ``alerts_of`` is the lines alone (the report's
``alerts``). The check names are what a deployment's ``retrain.on`` lists (docs/monitoring.md).
Plain dicts in, plain dicts out: no numpy, so the control plane's request models import it.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

__all__ = ["CHECKS", "CheckName", "OUT_OF_RANGE_ALERT", "alerts_of", "failed_checks"]

# The checks that raise alerts, in the order a report lists them.
CheckName = Literal["schema", "missing_values", "out_of_range", "feature_drift", "output_shift"]
CHECKS: tuple[str, ...] = get_args(CheckName)
OUT_OF_RANGE_ALERT = 0.05  # share of values outside the training range that raises an alert


def failed_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """``[{"check", "message", "p_value"}]`` for each failed check of ``report`` (p_value None for a rate)."""
    if not report["schema"]["ok"]:
        return [_failed("schema", "the logged features or outputs do not have the reference's shape")]
    out = []
    quality, features, outputs = report["quality"], report["features"], report["outputs"]
    if quality["missing_features"]:
        out.append(
            _failed("missing_values", f"features {quality['missing_features'][:10]} have more NaN than in training")
        )
    if quality["out_of_range_rate"] > OUT_OF_RANGE_ALERT:
        rate = quality["out_of_range_rate"]
        out.append(_failed("out_of_range", f"{rate:.1%} of values outside the training min/max"))
    if features["drift"]:
        p = min((row["ks_p_holm"] for row in features["per_feature"]), default=None)
        text = f"features {features['drifted_features'][:10]} (KS, Holm, alpha {features['alpha']})"
        out.append(_failed("feature_drift", text, p))
    if outputs["drift"]:
        text = f"p = {outputs['p_value']:.3g} ({outputs['test']}; {outputs['correction']}; alpha {outputs['alpha']})"
        out.append(_failed("output_shift", text, outputs["p_value"]))
    return out


def alerts_of(report: dict[str, Any]) -> list[str]:
    """The checks of a window report that failed, one short line each."""
    return [check["message"] for check in failed_checks(report)]


def _failed(check: str, detail: str, p_value: float | None = None) -> dict[str, Any]:
    # "output shift: p = ..." — the line starts with the check's name as words (simulate.py reads it).
    return {"check": check, "message": f"{check.replace('_', ' ')}: {detail}", "p_value": p_value}
