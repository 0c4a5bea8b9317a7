"""What the NumPy array sources (``npz``, ``npy``) share: test-pair options and arrays → RawData."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from modelyard._validation import StrictModel
from modelyard.data.raw import RawData, as_features
from modelyard.data.tables import labels_to_classes

__all__ = ["ArrayOptions", "arrays_to_raw"]


class ArrayOptions(StrictModel):
    """Options every array source has; ``pair_noun`` says what ``x_test``/``y_test`` name."""

    pair_noun: ClassVar[str] = "arrays"

    x_test: str | None = None
    y_test: str | None = None
    kind: Literal["auto", "tabular", "image", "sequence"] = "auto"
    class_names: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _test_pair(self) -> ArrayOptions:
        if (self.x_test is None) != (self.y_test is None):
            raise ValueError(f"expected both `x_test` and `y_test` {self.pair_noun}, or neither")
        return self


def arrays_to_raw(
    opts: ArrayOptions,
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray | None,
    y_test: np.ndarray | None,
    *,
    convert_features: bool = True,
) -> RawData:
    """Loaded arrays as RawData: string labels become class indices shared by train and test,
    ``kind: auto`` is image for 4-d features and tabular otherwise. ``convert_features`` False
    leaves the features as they are (a memory-mapped file stays on disk; ``prepare`` converts
    the rows it reads)."""
    class_names = list(opts.class_names) if opts.class_names else None
    if y.dtype.kind in "US":
        both = np.concatenate([y.reshape(-1), y_test.reshape(-1)]) if y_test is not None else y.reshape(-1)
        index, class_names = labels_to_classes(both)
        y, y_test = index[: len(y)], (index[len(y) :] if y_test is not None else None)
    kind = opts.kind if opts.kind != "auto" else ("image" if x.ndim == 4 else "tabular")
    if convert_features:
        x = as_features(x, kind)
        x_test = as_features(x_test, kind) if x_test is not None else None
    return RawData(
        x_train=x,
        y_train=_targets(y),
        x_test=x_test,
        y_test=_targets(y_test) if y_test is not None else None,
        class_names=class_names,
        kind=kind,
    )


def _targets(y: np.ndarray) -> np.ndarray:
    return y.astype(np.int64) if y.dtype.kind in "iub" else y.astype(np.float32)
