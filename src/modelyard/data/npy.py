"""NumPy ``.npy`` arrays, memory-mapped: data sets larger than memory.

``x`` (and ``x_test``) are opened with ``np.load(mmap_mode="r")``: nothing is read until
rows are used, so with ``data.stream: true`` training reads each batch from disk (see
``modelyard.data.streamed``); without it ``prepare`` loads the arrays as any other
source. Targets are read into memory (one label or a few values per sample). Like
``npz``, object arrays are refused: loading them would mean unpickling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from modelyard._validation import StrictModel
from modelyard.data.raw import SOURCES, RawData, resolve_path
from modelyard.data.tables import labels_to_classes
from modelyard.errors import DataError

__all__ = ["NpyOptions"]


class NpyOptions(StrictModel):
    x: str = Field(min_length=1, description=".npy file of features, one row per sample")
    y: str = Field(min_length=1, description=".npy file of targets, one per sample")
    x_test: str | None = None
    y_test: str | None = None
    kind: Literal["auto", "tabular", "image", "sequence"] = "auto"
    class_names: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _test_pair(self) -> NpyOptions:
        if (self.x_test is None) != (self.y_test is None):
            raise ValueError("expected both `x_test` and `y_test` files, or neither")
        return self


def _open(path_option: str, field: str, *, mapped: bool) -> np.ndarray:
    path: Path = resolve_path(path_option, f"data.{field}")
    try:
        arr = np.load(path, mmap_mode="r" if mapped else None, allow_pickle=False)
    except ValueError as exc:  # object arrays need pickle: refused
        raise DataError(f"Invalid array file {path} (`data.{field}`): {exc}; save numeric arrays with np.save", field=f"data.{field}") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"Cannot read {path} (`data.{field}`): expected a .npy file written by np.save ({exc})", field=f"data.{field}") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"Invalid array file {path} (`data.{field}`): expected one .npy array, received a .npz archive (use source npz)", field=f"data.{field}")
    allowed = "biuf" if field.startswith("x") else "biufUS"
    if arr.dtype.kind not in allowed:
        raise DataError(f"Invalid array file {path} (`data.{field}`): expected numbers, received dtype {arr.dtype}", field=f"data.{field}")
    if arr.ndim == 0:
        raise DataError(f"Invalid array file {path} (`data.{field}`): expected one row per sample, received a scalar", field=f"data.{field}")
    return arr


def _targets(y: np.ndarray) -> np.ndarray:
    return y.astype(np.int64) if y.dtype.kind in "iub" else y.astype(np.float32)


@SOURCES.component("npy", options=NpyOptions)
def npy(opts: NpyOptions, *, seed: int) -> RawData:
    """Features and targets as .npy files; the features stay memory-mapped on disk."""
    x = _open(opts.x, "x", mapped=True)
    y = _open(opts.y, "y", mapped=False)
    x_test = _open(opts.x_test, "x_test", mapped=True) if opts.x_test else None
    y_test = _open(opts.y_test, "y_test", mapped=False) if opts.y_test else None
    class_names = list(opts.class_names) if opts.class_names else None
    if y.dtype.kind in "US":
        both = np.concatenate([y.reshape(-1), y_test.reshape(-1)]) if y_test is not None else y.reshape(-1)
        index, class_names = labels_to_classes(both)
        y, y_test = index[: len(y)], (index[len(y):] if y_test is not None else None)
    kind = opts.kind if opts.kind != "auto" else ("image" if x.ndim == 4 else "tabular")
    return RawData(x_train=x, y_train=_targets(y), x_test=x_test, y_test=_targets(y_test) if y_test is not None else None,
                   class_names=class_names, kind=kind)
