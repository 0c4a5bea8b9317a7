"""Out-of-scope detection for CLINC150 models: max-softmax rejection at a threshold chosen on val.

A query whose top class probability is below ``threshold`` is answered "out of scope". The
threshold is the highest one that keeps the in-scope accuracy on the data set's val split (3,000
queries; a rejected in-scope query counts as wrong) at ``min_accuracy`` or more; with it the
report gives the recall on the 1,000 out-of-scope test queries (the share rejected) and the
in-scope test accuracy (4,500 queries) with and without rejection. A model trained with
``use_val: true`` has seen the val split, so its threshold is optimistic: ``val_seen`` says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelyard.data.clinc150 import OUT_OF_SCOPE, Clinc150Options, splits
from modelyard.errors import DataError
from modelyard.predict import Predictor

__all__ = ["threshold_for", "out_of_scope_report"]


def threshold_for(confidence: np.ndarray, correct: np.ndarray, min_accuracy: float) -> float:
    """The highest threshold ``t`` with ``mean(correct & (confidence >= t)) >= min_accuracy``."""
    need = math.ceil(min_accuracy * len(confidence) - 1e-9)  # queries that must stay accepted and right
    kept = np.sort(confidence[correct])[::-1]
    if need > len(kept):
        raise DataError(
            f"Invalid value for `min_accuracy`: expected at most the model's val accuracy "
            f"{len(kept) / len(confidence):.4f} (no threshold can raise it), received {min_accuracy}",
            field="min_accuracy",
        )
    return float(kept[need - 1]) if need > 0 else math.inf


def _scores(model: Predictor, rows: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
    probs = model.predict([text for text, _ in rows])
    names = model.class_names or []
    index = {name: i for i, name in enumerate(names)}
    labels = np.asarray([index.get(intent, -1) for _, intent in rows])
    return probs.max(axis=1), probs.argmax(axis=1) == labels


def out_of_scope_report(model: Predictor, *, min_accuracy: float = 0.94, path: str | None = None) -> dict[str, Any]:
    """Threshold (from val), out-of-scope recall and in-scope accuracy on CLINC150's test splits."""
    if OUT_OF_SCOPE in (model.class_names or []):
        raise DataError(
            f"Model {model.ref} has an {OUT_OF_SCOPE!r} class (out_of_scope: class); expected a model of the "
            "150 in-scope intents, whose out-of-scope queries are found by thresholding",
            field="model",
        )
    source = model.spec.data.source
    if source.type != "clinc150":
        raise DataError(
            f"Model {model.ref} was trained on {source.type!r}; expected a model trained on the clinc150 source "
            "(out-of-scope recall is measured on CLINC150's out-of-scope test queries)",
            field="data.source",
        )
    data = splits(Clinc150Options(path=path if path is not None else source.options.get("path")))
    val_conf, val_ok = _scores(model, data["val"])
    threshold = threshold_for(val_conf, val_ok, min_accuracy)
    test_conf, test_ok = _scores(model, data["test"])
    oos_conf, _ = _scores(model, data["oos_test"])
    return {
        "model": model.ref,
        "threshold": threshold,
        "min_accuracy": min_accuracy,
        "val_accuracy_at_threshold": float(np.mean(val_ok & (val_conf >= threshold))),
        "test_accuracy": float(np.mean(test_ok)),
        "test_accuracy_at_threshold": float(np.mean(test_ok & (test_conf >= threshold))),
        "oos_recall": float(np.mean(oos_conf < threshold)),
        "in_scope_test": len(test_conf),
        "oos_test": len(oos_conf),
        "val_seen": bool(source.options.get("use_val", False)),
    }
