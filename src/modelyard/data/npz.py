"""NumPy ``.npz`` archives: arrays by key, loaded without pickle.

Object arrays (which numpy can only store by pickling) are refused: loading them would
mean running code from the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from modelyard._validation import StrictModel
from modelyard.data.raw import SOURCES, RawData, as_features, missing_key_error, resolve_path
from modelyard.data.tables import labels_to_classes
from modelyard.errors import DataError

__all__ = ["NpzOptions"]


class NpzOptions(StrictModel):
    path: str = Field(min_length=1)
    x: str = "x"
    y: str = "y"
    x_test: str | None = None
    y_test: str | None = None
    kind: Literal["auto", "tabular", "image", "sequence"] = "auto"
    class_names: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _test_pair(self) -> NpzOptions:
        if (self.x_test is None) != (self.y_test is None):
            raise ValueError("expected both `x_test` and `y_test` keys, or neither")
        return self


@SOURCES.component("npz", options=NpzOptions, primary="path")
def npz(opts: NpzOptions, *, seed: int) -> RawData:
    """Arrays in a .npz file: `x` and `y` keys (and optionally `x_test`/`y_test`)."""
    path = resolve_path(opts.path, "data.path")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"Cannot read {path} (`data.path`): expected a .npz archive of numeric arrays ({exc})", field="data.path") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"Invalid data file {path} (`data.path`): expected a .npz archive with named arrays, received a single .npy array", field="data.path")
    with archive:
        keys = list(archive.files)
        arrays = {}
        for field in ("x", "y", "x_test", "y_test"):
            key = getattr(opts, field)
            if key is None:
                continue
            if key not in keys:
                raise missing_key_error("array", key, keys, path, f"data.{field}")
            arrays[field] = _load(archive, key, path, field)
    class_names = list(opts.class_names) if opts.class_names else None
    y_train, y_test = arrays["y"], arrays.get("y_test")
    if y_train.dtype.kind in "US":
        # String labels: one class list shared by train and test.
        both = np.concatenate([y_train.reshape(-1), y_test.reshape(-1)]) if y_test is not None else y_train.reshape(-1)
        index, class_names = labels_to_classes(both)
        y_train, y_test = index[: len(y_train)], (index[len(y_train):] if y_test is not None else None)
    kind = opts.kind if opts.kind != "auto" else ("image" if arrays["x"].ndim == 4 else "tabular")
    return RawData(
        x_train=as_features(arrays["x"], kind),
        y_train=_targets(y_train),
        x_test=as_features(arrays["x_test"], kind) if "x_test" in arrays else None,
        y_test=_targets(y_test) if y_test is not None else None,
        class_names=class_names,
        kind=kind,
    )


def _load(archive: np.lib.npyio.NpzFile, key: str, path: Path, field: str) -> np.ndarray:
    try:
        arr = archive[key]
    except ValueError:
        raise DataError(
            f"Invalid array {key!r} in {path} (`data.{field}`): it holds Python objects, which can only be "
            f"loaded by unpickling; save numeric (or string) arrays instead",
            field=f"data.{field}",
        ) from None
    if arr.dtype.kind not in "biufUS" or (arr.dtype.kind in "US" and field.startswith("x")):
        raise DataError(f"Invalid array {key!r} in {path} (`data.{field}`): expected numbers, received dtype {arr.dtype}", field=f"data.{field}")
    if arr.ndim == 0:
        raise DataError(f"Invalid array {key!r} in {path} (`data.{field}`): expected one row per sample, received a scalar", field=f"data.{field}")
    return arr


def _targets(y: np.ndarray) -> np.ndarray:
    if y.dtype.kind in "iub":
        return y.astype(np.int64)
    return y.astype(np.float32)
