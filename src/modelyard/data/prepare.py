"""``prepare``: a DataSpec to ready-to-train tensors and a fitted preprocessing pipeline.

Order: load the source → ``limit`` → test split (the source's own, else the ``test``
fraction; default 0.2, none for tiny sets such as ``xor`` which are judged on their
training points) → ``validation`` fraction off the training part (stratified for
classification) → fit the pipeline on the training split only → transform every split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from modelyard.data.pipeline import Pipeline
from modelyard.data.raw import RawData
from modelyard.data.sources import load_source
from modelyard.data.split import derived_seed, holdout, subset
from modelyard.data.targets import canonical_targets
from modelyard.errors import DataError

if TYPE_CHECKING:
    from modelyard.spec import DataSpec

__all__ = ["Split", "Prepared", "prepare", "DEFAULT_TEST_FRACTION"]

log = logging.getLogger(__name__)

DEFAULT_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Split:
    """One split as contiguous tensors: x float32 (int64 token ids), y int64 [N] / float32 [N, k]."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Prepared:
    """Everything training needs from the data: splits, fitted pipeline and label metadata."""

    train: Split
    val: Split | None
    test: Split | None
    pipeline: Pipeline
    num_classes: int | None
    class_names: list[str] | None
    feature_names: list[str] | None
    input_shape: tuple[int, ...]
    kind: str


def prepare(data_spec: DataSpec, *, task: Literal["classification", "regression"], seed: int) -> Prepared:
    """Load, split and preprocess the data of ``data_spec``, deterministically for ``seed``."""
    raw = load_source(data_spec.source, seed=seed)
    _check_finite(raw.x_train, "training data")
    x, y = raw.x_train, raw.y_train
    x_test, y_test = raw.x_test, raw.y_test
    if x_test is not None:
        _check_finite(x_test, "test data")
    if data_spec.limit is not None and data_spec.limit < len(x):
        keep = subset(len(x), data_spec.limit, derived_seed(seed, "limit"))
        if x_test is not None and y_test is not None:
            # The official test set shrinks by the same fraction as the training set.
            k = max(1, round(data_spec.limit * len(x_test) / len(x)))
            keep_test = subset(len(x_test), k, derived_seed(seed, "limit-test"))
            x_test, y_test = x_test[keep_test], y_test[keep_test]
        x, y = x[keep], y[keep]

    y = canonical_targets(y, task, class_names=raw.class_names, where="the training data")
    if y_test is not None:
        y_test = canonical_targets(y_test, task, class_names=raw.class_names, where="the test data")
    num_classes = _num_classes(task, raw, y, y_test)
    labels = y if task == "classification" else None

    if x_test is None:
        fraction = data_spec.test if data_spec.test is not None else (DEFAULT_TEST_FRACTION if raw.holdout else 0.0)
        if fraction > 0:
            kept, held = holdout(len(x), fraction, seed=derived_seed(seed, "test"), labels=labels, what="the test split")
            x, y, x_test, y_test = x[kept], y[kept], x[held], y[held]
    elif data_spec.test:
        log.warning("data.test=%s ignored: the source has its own test split", data_spec.test)

    x_val = y_val = None
    if data_spec.validation > 0:
        kept, held = holdout(
            len(x), data_spec.validation, seed=derived_seed(seed, "validation"),
            labels=y if task == "classification" else None, what="the validation split", field="data.validation",
        )
        x, y, x_val, y_val = x[kept], y[kept], x[held], y[held]

    pipeline, x_fit, y_fit = Pipeline.fit_transform(
        data_spec.preprocess, x, y, task=task, kind=raw.kind, num_classes=num_classes,
        class_names=raw.class_names, feature_names=raw.feature_names,
    )
    train = _split(pipeline, x_fit, y_fit)
    val = transformed_split(pipeline, x_val, y_val) if x_val is not None else None
    test = transformed_split(pipeline, x_test, y_test) if x_test is not None else None
    log.debug("prepared %s: train %d, val %d, test %d, input %s", data_spec.source.type, len(train),
              len(val) if val else 0, len(test) if test else 0, pipeline.input_shape)
    return Prepared(
        train=train, val=val, test=test, pipeline=pipeline, num_classes=num_classes,
        class_names=raw.class_names, feature_names=raw.feature_names,
        input_shape=pipeline.input_shape, kind=raw.kind,
    )


def _num_classes(task: str, raw: RawData, y: np.ndarray, y_test: np.ndarray | None) -> int | None:
    if task != "classification":
        return None
    highest = max(int(y.max()), int(y_test.max()) if y_test is not None and len(y_test) else 0)
    if raw.class_names:
        if highest >= len(raw.class_names):
            raise DataError(f"Invalid data: class label {highest} but only {len(raw.class_names)} class names {raw.class_names}", field="data")
        return len(raw.class_names)
    # At least two: a binary problem whose (limited) data happen to hold one class is still binary.
    return max(highest + 1, 2)


def _check_finite(x: np.ndarray, where: str) -> None:
    if x.dtype.kind != "f":
        if x.dtype.kind not in "biu":
            raise DataError(f"Invalid {where}: expected numeric features, received {x.dtype}", field="data")
        return
    finite = np.isfinite(x.reshape(len(x), -1))
    if not finite.all():
        rows = finite.all(axis=1)
        i = int(np.argmin(rows))
        j = int(np.argmin(finite[i]))
        raise DataError(f"Invalid {where}: expected finite numbers, received {x.reshape(len(x), -1)[i, j]} in sample {i}, feature {j}", field="data")


def transformed_split(pipeline: Pipeline, x: np.ndarray, y: np.ndarray, *, where: str = "the data") -> Split:
    """Raw arrays → a Split through an already fitted pipeline (validation, test, `modelyard eval`)."""
    return _split(pipeline, pipeline.transform_x(x), pipeline.transform_y(y, where=where))


def _split(pipeline: Pipeline, x: np.ndarray, y: np.ndarray) -> Split:
    dtype = np.int64 if pipeline.integer_ids else np.float32
    tx = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))
    ty = torch.from_numpy(np.ascontiguousarray(y))
    return Split(tx, ty)
