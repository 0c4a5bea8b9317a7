"""Strict JSON for training state: non-finite floats and tuples survive the round trip.

torch's scheduler states hold ``inf`` (ReduceLROnPlateau's ``best``) and early stopping
starts from ``inf``; plain ``json`` would write the non-standard ``Infinity``. Here such
floats become ``{"__float__": "inf"}`` so every file we write is standard JSON.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["encode", "decode"]

_TAG = "__float__"


def encode(obj: Any) -> Any:
    """``obj`` with non-finite floats tagged, tuples as lists and dict keys as strings."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {_TAG: repr(obj)}
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    # numpy / torch scalars reach here from metric values: keep their number.
    if hasattr(obj, "item") and callable(obj.item):
        return encode(obj.item())
    raise TypeError(f"cannot store a {type(obj).__name__} as JSON training state")


def decode(obj: Any) -> Any:
    """Inverse of ``encode`` (tuples come back as lists)."""
    if isinstance(obj, dict):
        if set(obj) == {_TAG}:
            return float(obj[_TAG])
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj
