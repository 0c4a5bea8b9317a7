"""NumPy ``.npy`` arrays, memory-mapped: data sets larger than memory.

``x`` (and ``x_test``) are opened with ``np.load(mmap_mode="r")``: nothing is read until
rows are used, so with ``data.stream: true`` training reads each batch from disk (see
``modelyard.data.streamed``); without it ``prepare`` loads the arrays as any other
source. Targets are read into memory (one label or a few values per sample). Like
``npz``, object arrays are refused: loading them would mean unpickling.
"""

from __future__ import annotations

import tokenize
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from modelyard.data.arrays import ArrayOptions, arrays_to_raw
from modelyard.data.raw import SOURCES, RawData, resolve_path
from modelyard.errors import DataError

__all__ = ["NpyOptions", "NPY_ERRORS"]


#: What np.load raises on a damaged .npy file besides ValueError: the header is a Python
#: literal parsed with ``ast``/``tokenize``, so a garbled one raises their errors.
NPY_ERRORS = (OSError, EOFError, SyntaxError, tokenize.TokenError)


class NpyOptions(ArrayOptions):
    path_fields: ClassVar[dict[str, bool]] = {"x": False, "y": False, "x_test": False, "y_test": False}
    pair_noun = "files"

    x: str = Field(min_length=1, description=".npy file of features, one row per sample")
    y: str = Field(min_length=1, description=".npy file of targets, one per sample")


def _open(path_option: str, field: str, *, mapped: bool) -> np.ndarray:
    path: Path = resolve_path(path_option, f"data.{field}")
    try:
        arr = np.load(path, mmap_mode="r" if mapped else None, allow_pickle=False)
    except ValueError:  # object arrays need pickle: refused
        raise DataError(
            f"Invalid array file {path} (`data.{field}`): expected numeric arrays (pickled objects are refused); "
            f"save numeric arrays with np.save",
            field=f"data.{field}",
        ) from None
    except NPY_ERRORS as exc:
        # numpy's message can quote the file's header: only the kind of failure is shown.
        raise DataError(
            f"Cannot read {path} (`data.{field}`): expected a .npy file written by np.save ({type(exc).__name__})",
            field=f"data.{field}",
        ) from None
    if not isinstance(arr, np.ndarray):
        raise DataError(
            f"Invalid array file {path} (`data.{field}`): expected one .npy array, received a .npz archive (use source npz)",
            field=f"data.{field}",
        )
    allowed = "biuf" if field.startswith("x") else "biufUS"
    if arr.dtype.kind not in allowed:
        raise DataError(
            f"Invalid array file {path} (`data.{field}`): expected numbers, received dtype {arr.dtype}",
            field=f"data.{field}",
        )
    if arr.ndim == 0:
        raise DataError(
            f"Invalid array file {path} (`data.{field}`): expected one row per sample, received a scalar",
            field=f"data.{field}",
        )
    return arr


@SOURCES.component("npy", options=NpyOptions)
def npy(opts: NpyOptions, *, seed: int) -> RawData:
    """Features and targets as .npy files; the features stay memory-mapped on disk."""
    x = _open(opts.x, "x", mapped=True)
    y = _open(opts.y, "y", mapped=False)
    x_test = _open(opts.x_test, "x_test", mapped=True) if opts.x_test else None
    y_test = _open(opts.y_test, "y_test", mapped=False) if opts.y_test else None
    return arrays_to_raw(opts, x, y, x_test, y_test, convert_features=False)
