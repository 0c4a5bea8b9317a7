"""Atomic file writes and strict JSON, shared by the store, checkpoints, plots and ONNX export.

A reader (another process, a server worker) must never see half a file: everything is
written to a temporary file in the same folder, flushed, then ``os.replace``d over the
target, which is atomic on POSIX and Windows. JSON is strict (no NaN/Infinity, which
browsers and most JSON parsers refuse); numpy and torch values are converted on the way.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelyard.errors import StoreError

__all__ = [
    "follow_umask",
    "user_folder",
    "atomic_write_bytes",
    "atomic_write_text",
    "dumps_json",
    "to_jsonable",
    "read_json",
]


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (os.umask sets it, racing threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def follow_umask(path: Path) -> None:
    """Give a file another library wrote (safetensors' save_file writes 0600) the mode a plain open gives."""
    os.chmod(path, 0o666 & ~_umask())


def user_folder(parent: Path, prefix: str) -> Path:
    """``tempfile.mkdtemp`` with the mode a plain ``mkdir`` gives (0777 less the umask), for a folder
    that is renamed into place for the user (a version, a data set): mkdtemp's 0700 would hide it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(folder, 0o777 & ~_umask())
    return folder


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, private: bool = False) -> Path:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix.

    The file gets the mode a plain ``open`` would give (0666 less the user's umask): mkstemp's
    0600 would make a user's exports, plots and store files unreadable to their group. Secrets
    (``private=True``: tokens) keep 0600 whatever the umask."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if not private:
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return target


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); not possible (nor needed) on Windows."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, private: bool = False) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"), private=private)


def to_jsonable(value: Any, field: str = "value") -> Any:
    """Plain JSON data from dicts/lists/scalars, numpy and torch values.

    Non-finite floats become None (strict JSON has no NaN). Anything else raises a
    StoreError naming where in ``value`` it sits.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v, f"{field}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, f"{field}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Path):
        return str(value)
    # numpy scalars/arrays and torch tensors, without importing either here.
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return to_jsonable(tolist(), field)
    item = getattr(value, "item", None)
    if callable(item):
        return to_jsonable(item(), field)
    raise StoreError(
        f"Cannot store `{field}`: expected JSON-compatible data (numbers, strings, lists, mappings), "
        f"received {type(value).__name__}",
        field=field,
    )


def dumps_json(value: Any, field: str = "value", *, indent: int | None = 2) -> str:
    """Strict JSON text for ``value`` (see ``to_jsonable``)."""
    return json.dumps(to_jsonable(value, field), indent=indent, allow_nan=False, ensure_ascii=False)


def read_json(path: Path) -> Any:
    """Parse a JSON file of the store; a missing or corrupt file is a StoreError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"Store file is missing: {path}", field=path.name) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"Store file {path} is unreadable: {exc}", field=path.name) from None
