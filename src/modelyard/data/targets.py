"""Targets in the one form the rest of modelyard expects.

Classification: int64 class indices ``[N]``. Regression: float32 ``[N, outputs]``.
"""

from __future__ import annotations

import numpy as np

from modelyard.errors import DataError

__all__ = ["canonical_targets"]


def canonical_targets(
    y: np.ndarray,
    task: str,
    *,
    class_names: list[str] | None = None,
    num_classes: int | None = None,
    where: str = "the training data",
) -> np.ndarray:
    """``y`` as int64 ``[N]`` class indices or float32 ``[N, outputs]`` values; DataError if it cannot be."""
    y = np.asarray(y)
    if task == "classification":
        return _classes(y, class_names, num_classes, where)
    if y.dtype.kind not in "biuf":
        raise DataError(
            f"Invalid targets in {where}: a regression task needs numeric targets, received {y.dtype} values "
            f"such as {y.reshape(-1)[:1].tolist()}; use a classification loss for class labels",
            field="train.loss",
        )
    y = y.astype(np.float32).reshape(len(y), -1)
    finite = np.isfinite(y)
    if not finite.all():
        row = int(np.argmin(finite.all(axis=1)))
        raise DataError(
            f"Invalid targets in {where}: expected finite numbers, received {y[row].tolist()} at sample {row}",
            field="data",
        )
    return y


def _classes(y: np.ndarray, class_names: list[str] | None, num_classes: int | None, where: str) -> np.ndarray:
    if y.dtype.kind in "USO":
        if not class_names:
            raise DataError(
                f"Invalid targets in {where}: received text labels but the model has no class names", field="data"
            )
        lookup = {name: i for i, name in enumerate(class_names)}
        labels = [str(v) for v in y.reshape(-1)]
        unknown = sorted({v for v in labels if v not in lookup})
        if unknown:
            raise DataError(
                f"Invalid targets in {where}: unknown class labels {unknown[:5]}; expected one of {class_names}",
                field="data",
            )
        return np.asarray([lookup[v] for v in labels], dtype=np.int64)
    if y.dtype.kind not in "biuf":
        raise DataError(f"Invalid targets in {where}: expected class labels, received {y.dtype}", field="data")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and len(y) and _is_one_hot(y):
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise DataError(
            f"Invalid targets in {where}: a classification task needs one class label per sample (or one-hot rows), "
            f"received targets of shape {list(y.shape)}",
            field="data",
        )
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            i = int(np.argmin(whole))
            raise DataError(
                f"Invalid targets in {where}: a classification task needs whole-number class labels, received {y[i]} "
                f"at sample {i}; use a regression loss (such as mse) for continuous targets",
                field="train.loss",
            )
    labels = y.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise DataError(
            f"Invalid targets in {where}: class labels must be 0 or more, received {int(labels.min())}", field="data"
        )
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise DataError(
            f"Invalid targets in {where}: expected class labels 0..{num_classes - 1}, received {int(labels.max())}",
            field="data",
        )
    return labels


def _is_one_hot(y: np.ndarray) -> bool:
    return bool(np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1))
