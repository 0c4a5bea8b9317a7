"""``prepare``: a DataSpec to ready-to-train tensors and a fitted preprocessing pipeline.

Order: load the source → ``limit`` → test split (the source's own, else the ``test``
fraction; default 0.2, none for tiny sets such as ``xor`` which are judged on their
training points) → ``validation`` fraction off the training part (stratified for
classification) → append the source's training-only rows (``RawData.x_extra``: synthetic
speech) → fit the pipeline on the training split only → transform every split.

Re-created for a trained model (``stored=`` its pipeline: eval, compress, explain), the fresh fit
is only compared with the stored one (``Pipeline.same_fit``): when they match, every split is
transformed with the stored pipeline, since a fit that is not deterministic (a trained tokenizer)
would give other token ids than the model was trained on; when they differ the data changed
since training and ``Prepared.data_changed`` says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from modelyard.data import streamed  # streamed.FIT_ROWS read at call time (tests lower it)
from modelyard.data.pipeline import Pipeline
from modelyard.data.raw import RawData, as_features
from modelyard.data.sources import load_source
from modelyard.data.split import derived_seed, holdout, subset
from modelyard.data.streamed import StreamedSplit, check_finite_rows, is_mapped
from modelyard.data.targets import canonical_targets
from modelyard.errors import DataError, SpecError

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
    data_lineage: dict[str, Any] | None = None  # a stored dataset's (RawData.lineage)
    #: ``data.groups``: the group name of each training sample (in ``train``'s order), else None.
    train_groups: np.ndarray | None = None
    #: With ``prepare(stored=...)``: the fresh fit differs from the stored pipeline (the data
    #: changed since training); ``pipeline`` is then the fresh fit, else the stored one.
    data_changed: bool = False


def prepare(
    data_spec: DataSpec,
    *,
    task: Literal["classification", "regression"],
    seed: int,
    in_memory: bool = False,
    stored: Pipeline | None = None,
) -> Prepared:
    """Load, split and preprocess the data of ``data_spec``, deterministically for ``seed``.

    With ``data.stream`` the splits stay on disk as ``StreamedSplit``s (the source must be
    memory-mapped); ``in_memory`` loads them anyway (compression and explanations).
    ``stored``: the trained model's pipeline, used for every split when the fresh fit matches it.
    """
    raw = load_source(data_spec.source, seed=seed)
    stream = data_spec.stream and not in_memory
    if stream and not is_mapped(raw.x_train):
        raise SpecError(
            f"Invalid value for `data.stream`: streaming reads rows from a memory-mapped file, which source "
            f"{data_spec.source.type!r} does not provide; use source npy (arrays saved with np.save) or set stream: false",
            field="data.stream",
        )
    # Row numbers into the source's arrays; None means all of them, in order.
    rows: np.ndarray | None = None
    test_rows: np.ndarray | None = None
    y, y_test = raw.y_train, raw.y_test
    if data_spec.limit is not None and data_spec.limit < len(y):
        rows = subset(len(y), data_spec.limit, derived_seed(seed, "limit"))
        if y_test is not None:
            # The official test set shrinks by the same fraction as the training set.
            k = max(1, round(data_spec.limit * len(y_test) / len(y)))
            test_rows = subset(len(y_test), k, derived_seed(seed, "limit-test"))
            y_test = y_test[test_rows]
        y = y[rows]
    check_finite_rows(raw.x_train, rows, "training data")
    if raw.x_test is not None:
        check_finite_rows(raw.x_test, test_rows, "test data")

    y = canonical_targets(y, task, class_names=raw.class_names, where="the training data")
    if y_test is not None:
        y_test = canonical_targets(y_test, task, class_names=raw.class_names, where="the test data")
    num_classes = _num_classes(task, raw, y, y_test)
    labels = y if task == "classification" else None
    x_test_source = raw.x_test
    everything = _positions(rows, len(y))

    if raw.x_test is None:
        fraction = data_spec.test if data_spec.test is not None else (DEFAULT_TEST_FRACTION if raw.holdout else 0.0)
        if fraction > 0:
            kept, held = holdout(
                len(y), fraction, seed=derived_seed(seed, "test"), labels=labels, what="the test split"
            )
            x_test_source, test_rows, y_test = raw.x_train, everything[held], y[held]
            rows, y = everything[kept], y[kept]
    elif data_spec.test:
        log.warning("data.test=%s ignored: the source has its own test split", data_spec.test)

    val_rows = y_val = None
    if data_spec.validation > 0:
        kept, held = holdout(
            len(y),
            data_spec.validation,
            seed=derived_seed(seed, "validation"),
            labels=y if task == "classification" else None,
            what="the validation split",
            field="data.validation",
        )
        train_all = _positions(rows, len(y))
        rows, val_rows, y, y_val = train_all[kept], train_all[held], y[kept], y[held]

    extra = raw.x_extra is not None and raw.y_extra is not None and len(raw.y_extra) > 0
    if extra and stream:
        raise SpecError(
            "Invalid value for `data.stream`: training-only rows (synthetic speech) are held in memory; set stream: false",
            field="data.stream",
        )
    y_train = y
    groups = raw.groups[_positions(rows, len(y))] if raw.groups is not None and not extra else None
    if extra:  # after the test and validation splits: training-only rows are never evaluated on
        y_train = np.concatenate(
            [y, canonical_targets(raw.y_extra, task, class_names=raw.class_names, where="the training-only data")]
        )

    def train_x() -> np.ndarray:
        x = _rows(raw.x_train, rows, raw.kind)
        return np.concatenate([x, raw.x_extra]) if extra else x

    fit_args = dict(
        task=task, kind=raw.kind, num_classes=num_classes, class_names=raw.class_names, feature_names=raw.feature_names
    )
    fitted: Split | None = None  # the training split, when fitting transformed it already
    if data_spec.stream:
        pipeline = _sampled_pipeline(data_spec, raw, _positions(rows, len(y)), y, seed=seed, **fit_args)
    else:
        pipeline, x_fit, y_fit = Pipeline.fit_transform(data_spec.preprocess, train_x(), y_train, **fit_args)
        fitted = _split(pipeline, x_fit, y_fit)
    data_changed = False
    if stored is not None:
        if pipeline.same_fit(stored):
            pipeline, fitted = stored, None  # the training split too goes through the stored pipeline
        else:
            data_changed = True
    if stream:

        def on_disk(source: np.ndarray, split_rows: np.ndarray | None, targets: np.ndarray) -> StreamedSplit:
            ty = torch.from_numpy(np.ascontiguousarray(pipeline.transform_y(targets)))
            return StreamedSplit(source, _positions(split_rows, len(targets)), ty, pipeline)

        train = on_disk(raw.x_train, rows, y)
        val = on_disk(raw.x_train, val_rows, y_val) if val_rows is not None else None
        test = on_disk(x_test_source, test_rows, y_test) if y_test is not None else None
    else:
        train = fitted if fitted is not None else transformed_split(pipeline, train_x(), y_train)
        val = (
            transformed_split(pipeline, _rows(raw.x_train, val_rows, raw.kind), y_val) if val_rows is not None else None
        )
        test = (
            transformed_split(pipeline, _rows(x_test_source, test_rows, raw.kind), y_test)
            if y_test is not None
            else None
        )
    log.debug(
        "prepared %s: train %d, val %d, test %d, input %s%s",
        data_spec.source.type,
        len(train),
        len(val) if val else 0,
        len(test) if test else 0,
        pipeline.input_shape,
        " (streamed)" if stream else "",
    )
    return Prepared(
        train=train,
        val=val,
        test=test,
        pipeline=pipeline,
        num_classes=num_classes,
        class_names=raw.class_names,
        feature_names=raw.feature_names,
        input_shape=pipeline.input_shape,
        kind=raw.kind,
        data_lineage=raw.lineage,
        data_changed=data_changed,
        train_groups=groups,
    )


def _positions(rows: np.ndarray | None, n: int) -> np.ndarray:
    """Row numbers as an array (None stands for all ``n`` rows, in order)."""
    return np.arange(n) if rows is None else rows


def _sampled_pipeline(
    data_spec: DataSpec, raw: RawData, train_rows: np.ndarray, y: np.ndarray, *, seed: int, **fit_args: Any
) -> Pipeline:
    """A streamed spec's pipeline, fitted on a seeded sample of its training rows however the
    splits are held, so its data re-created in memory (compress, explain) gets the same one."""
    fit_on = subset(len(train_rows), streamed.FIT_ROWS, derived_seed(seed, "stream-fit"))  # positions in the split
    return Pipeline.fit(data_spec.preprocess, _rows(raw.x_train, train_rows[fit_on], raw.kind), y[fit_on], **fit_args)


def _rows(x: np.ndarray, rows: np.ndarray | None, kind: str) -> np.ndarray:
    """The chosen rows of a source array (all of them for None), in memory: a memory-mapped
    file is read and converted as ``as_features`` says, other arrays are used as they are."""
    taken = x if rows is None else x[rows]
    return as_features(taken, kind) if is_mapped(x) else taken


def _num_classes(task: str, raw: RawData, y: np.ndarray, y_test: np.ndarray | None) -> int | None:
    if task != "classification":
        return None
    highest = max(int(y.max()), int(y_test.max()) if y_test is not None and len(y_test) else 0)
    if raw.class_names:
        if highest >= len(raw.class_names):
            raise DataError(
                f"Invalid data: class label {highest} but only {len(raw.class_names)} class names {raw.class_names}",
                field="data",
            )
        return len(raw.class_names)
    # At least two: a binary problem whose (limited) data happen to hold one class is still binary.
    return max(highest + 1, 2)


def transformed_split(pipeline: Pipeline, x: np.ndarray, y: np.ndarray, *, where: str = "the data") -> Split:
    """Raw arrays → a Split through an already fitted pipeline (validation, test, `modelyard eval`)."""
    return _split(pipeline, pipeline.transform_x(x), pipeline.transform_y(y, where=where))


def _split(pipeline: Pipeline, x: np.ndarray, y: np.ndarray) -> Split:
    dtype = np.int64 if pipeline.integer_ids else np.float32
    tx = torch.from_numpy(np.ascontiguousarray(x, dtype=dtype))
    ty = torch.from_numpy(np.ascontiguousarray(y))
    return Split(tx, ty)
