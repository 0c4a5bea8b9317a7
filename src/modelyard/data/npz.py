"""NumPy ``.npz`` archives: arrays by key, loaded without pickle.

Object arrays (which numpy can only store by pickling) are refused: loading them would
mean running code from the file.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from modelyard.data.access import current_access
from modelyard.data.arrays import ArrayOptions, arrays_to_raw
from modelyard.data.npy import NPY_ERRORS
from modelyard.data.raw import SOURCES, RawData, missing_key_error, resolve_path
from modelyard.errors import DataError

__all__ = ["NpzOptions"]


class NpzOptions(ArrayOptions):
    path_fields: ClassVar[dict[str, bool]] = {"path": False}
    pair_noun = "keys"

    path: str = Field(min_length=1)
    x: str = "x"
    y: str = "y"


@SOURCES.component("npz", options=NpzOptions, primary="path")
def npz(opts: NpzOptions, *, seed: int) -> RawData:
    """Arrays in a .npz file: `x` and `y` keys (and optionally `x_test`/`y_test`)."""
    path = resolve_path(opts.path, "data.path")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"Cannot read {path} (`data.path`): expected a .npz archive of numeric arrays ({type(exc).__name__})",
            field="data.path",
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(
            f"Invalid data file {path} (`data.path`): expected a .npz archive with named arrays, received a single .npy array",
            field="data.path",
        )
    with archive:
        access = current_access()
        if access is not None:  # members are inflated on load: cap what they expand to
            access.check_size(sum(i.file_size for i in archive.zip.infolist()), "data.path", f"{path} (unpacked)")
        keys = list(archive.files)
        arrays = {}
        for field in ("x", "y", "x_test", "y_test"):
            key = getattr(opts, field)
            if key is None:
                continue
            if key not in keys:
                raise missing_key_error("array", key, keys, path, f"data.{field}")
            arrays[field] = _load(archive, key, path, field)
    return arrays_to_raw(opts, arrays["x"], arrays["y"], arrays.get("x_test"), arrays.get("y_test"))


def _load(archive: np.lib.npyio.NpzFile, key: str, path: Path, field: str) -> np.ndarray:
    try:
        arr = archive[key]
    except NPY_ERRORS as exc:
        raise DataError(
            f"Invalid array {key!r} in {path} (`data.{field}`): not a readable .npy member ({type(exc).__name__})",
            field=f"data.{field}",
        ) from None
    except ValueError:
        raise DataError(
            f"Invalid array {key!r} in {path} (`data.{field}`): it holds Python objects, which can only be "
            f"loaded by unpickling; save numeric (or string) arrays instead",
            field=f"data.{field}",
        ) from None
    if arr.dtype.kind not in "biufUS" or (arr.dtype.kind in "US" and field.startswith("x")):
        raise DataError(
            f"Invalid array {key!r} in {path} (`data.{field}`): expected numbers, received dtype {arr.dtype}",
            field=f"data.{field}",
        )
    if arr.ndim == 0:
        raise DataError(
            f"Invalid array {key!r} in {path} (`data.{field}`): expected one row per sample, received a scalar",
            field=f"data.{field}",
        )
    return arr
