"""What every data source returns (``RawData``), the source registry and shared helpers.

Sources only load: they return arrays as they are in the data set (pixels 0..255, class
indices, string labels already turned into indices). Splitting, limiting and
preprocessing happen later in ``prepare`` so that every source gets them the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modelyard.components import ComponentRegistry
from modelyard.data.access import current_access
from modelyard.errors import DataError

__all__ = ["RawData", "SOURCES", "Kind", "resolve_path", "missing_key_error", "as_features"]

Kind = Literal["tabular", "image", "sequence", "text", "audio"]

#: Registry of data sources; target ``(opts, *, seed: int) -> RawData``.
SOURCES = ComponentRegistry("data source")


@dataclass
class RawData:
    """Arrays of one data source before splitting and preprocessing.

    ``x_test``/``y_test`` are None when the source has no official test split.
    ``holdout`` False means "do not carve a test split unless the spec asks for one;
    evaluate on the training points" (XOR and other tiny textbook sets).
    """

    x_train: np.ndarray  # text: one str per sample (a 1-D object array)
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    class_names: list[str] | None = None
    feature_names: list[str] | None = None
    kind: Kind = "tabular"
    holdout: bool = True
    # Where a stored dataset came from (the `dataset` source); the model version records it.
    lineage: dict[str, Any] | None = None
    # Training-only rows (synthetic speech): appended to the training split after the test and
    # validation splits are drawn, so they are never validated or tested on.
    x_extra: np.ndarray | None = None
    y_extra: np.ndarray | None = None
    # One group name per training row (`data.groups` of a table source): which client holds it
    # under `federated.partition: {column: ...}`.
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        # A source that returns mismatched arrays is a bug in the data, reported as such.
        _check_pair(self.x_train, self.y_train, "training")
        if (self.x_test is None) != (self.y_test is None):
            raise DataError("Invalid data source: expected both x_test and y_test, or neither")
        if (self.x_extra is None) != (self.y_extra is None):
            raise DataError("Invalid data source: expected both x_extra and y_extra, or neither")
        if self.groups is not None and len(self.groups) != len(self.y_train):
            raise DataError(
                f"Invalid data source: {len(self.groups)} group names for {len(self.y_train)} training samples"
            )
        if self.x_extra is not None and self.y_extra is not None:
            _check_pair(self.x_extra, self.y_extra, "training-only")
            if self.x_extra.shape[1:] != self.x_train.shape[1:]:
                raise DataError(
                    f"Invalid data: training-only samples have shape {list(self.x_extra.shape[1:])}, "
                    f"expected the training shape {list(self.x_train.shape[1:])}"
                )
        if self.x_test is not None and self.y_test is not None:
            _check_pair(self.x_test, self.y_test, "test")
            if self.x_test.shape[1:] != self.x_train.shape[1:]:
                raise DataError(
                    f"Invalid data: test samples have shape {list(self.x_test.shape[1:])}, "
                    f"expected the training shape {list(self.x_train.shape[1:])}"
                )

    @property
    def has_test(self) -> bool:
        return self.x_test is not None


def _check_pair(x: np.ndarray, y: np.ndarray, which: str) -> None:
    if x.ndim < 1 or len(x) == 0:
        raise DataError(f"Invalid data: the {which} set is empty (expected at least 1 sample)")
    if len(x) != len(y):
        raise DataError(f"Invalid data: the {which} set has {len(x)} samples (x) but {len(y)} targets (y)")


def resolve_path(path: str, field: str, *, folder: bool = False) -> Path:
    """``path`` as an absolute Path (relative paths resolve against the current directory).

    Raises DataError when it does not exist or is the wrong kind (file vs folder). Inside a
    server (``access.confined``) only the data folders may be read, and relative paths
    resolve against them (DataAccessError otherwise).
    """
    access = current_access()
    if access is not None:
        resolved = access.check(path, field, folder=folder)
    else:
        resolved = Path(path).expanduser()
        if not resolved.is_absolute():
            resolved = Path.cwd() / resolved
    what = "folder" if folder else "file"
    if not resolved.exists():
        raise DataError(f"Data {what} not found for `{field}`: {resolved} does not exist", field=field)
    if folder and not resolved.is_dir():
        raise DataError(f"Invalid value for `{field}`: expected a folder, received the file {resolved}", field=field)
    if not folder and resolved.is_dir():
        raise DataError(f"Invalid value for `{field}`: expected a file, received the folder {resolved}", field=field)
    return resolved


def missing_key_error(kind: str, key: str, found: list[str], where: Path | str, field: str) -> DataError:
    """'Column 'lable' not found in f.csv (3 columns)': the names found are not listed, since they
    are the file's contents (a job must not learn the first line of a file it may not read)."""
    msg = (
        f"Invalid value for `{field}`: {kind} {key!r} not found in {where}, which has {len(found)} {kind}s "
        f"(their names are not repeated here: error messages never quote a data file)"
    )
    return DataError(msg, field=field)


def as_features(x: np.ndarray, kind: str) -> np.ndarray:
    """Features as the pipeline takes them: integer ids stay int64 for sequence data (embedding
    inputs), everything else becomes float32."""
    if kind == "sequence" and x.dtype.kind in "iu":
        return np.asarray(x, dtype=np.int64)
    return np.asarray(x, dtype=np.float32)
