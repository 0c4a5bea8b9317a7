"""Where the store lives on disk: ``MODELYARD_HOME`` (default ``~/.modelyard``).

Layout::

    <home>/modelyard.db                       SQLite: runs, metrics, model versions
    <home>/artifacts/runs/<run_id>/           checkpoints/, plots, logs of one run
    <home>/artifacts/models/<name>/<version>/ one registered model version
    <home>/artifacts/datasets/<name>/<version>/ one stored (anonymised) dataset
    <home>/cache/artifacts/models/<name>/<version>/ a version fetched from the S3 artifact store
                                              (MODELYARD_ARTIFACTS_URL, store/artifacts.py)

Nothing is created at import time; folders appear the first time a store needs them.
Every path here is derived from a validated name or id, never from a path a user gave,
so no store API can be pointed outside its home.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path, PurePath, PurePosixPath
from typing import TypeVar

__all__ = [
    "ENV_VAR",
    "DB_FILENAME",
    "home",
    "db_path",
    "runs_root",
    "run_dir",
    "models_root",
    "model_dir",
    "model_key",
    "ensure_dir",
    "using_home",
    "datasets_root",
    "dataset_dir",
    "dataset_key",
    "cache_root",
]

_P = TypeVar("_P", bound=PurePath)

ENV_VAR = "MODELYARD_HOME"
DB_FILENAME = "modelyard.db"

# Ids and names that may become a folder name: the model-name pattern of spec.py plus
# the run-id alphabet. Checked again here so a bug elsewhere cannot escape the home.
_SAFE_PART = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


# The home of the command or training run in progress (``using_home``): what reads the store
# without being handed it (the `dataset` data source, called by `data.prepare`) uses the same one.
_CURRENT: ContextVar[Path | None] = ContextVar("modelyard_home", default=None)


def home(path: str | os.PathLike[str] | None = None) -> Path:
    """The store root: ``path`` if given, else the one ``using_home`` set, else ``$MODELYARD_HOME``,
    else ``~/.modelyard``.

    Resolved to an absolute path but not created.
    """
    if path is None:
        current = _CURRENT.get()
        if current is not None:
            return current
        path = os.environ.get(ENV_VAR) or "~/.modelyard"
    return Path(path).expanduser().resolve()


@contextmanager
def using_home(path: str | os.PathLike[str] | None) -> Iterator[None]:
    """Inside the block ``home()`` is ``path`` (nothing changes for None): `modelyard --home` and
    ``workflow.train(home=...)`` set it so that a spec's stored dataset is read from that store."""
    token = _CURRENT.set(home(path) if path is not None else _CURRENT.get())
    try:
        yield
    finally:
        _CURRENT.reset(token)


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing; return it."""
    path.mkdir(parents=True, exist_ok=True)
    return path


def _safe(part: str, what: str) -> str:
    if not _SAFE_PART.match(part):  # first char alphanumeric: never "." or ".."
        # Internal guard: callers validate user input with a proper message first.
        raise ValueError(f"unsafe {what} for a store folder: {part!r}")
    return part


def db_path(root: Path) -> Path:
    return root / DB_FILENAME


def runs_root(root: Path) -> Path:
    return root / "artifacts" / "runs"


def run_dir(root: Path, run_id: str) -> Path:
    return runs_root(root) / _safe(run_id, "run id")


def models_root(root: Path) -> Path:
    return root / "artifacts" / "models"


def model_dir(root: Path, name: str, version: int | None = None) -> Path:
    """``artifacts/models/<name>/`` or, with a version, ``.../<name>/<version>/``."""
    return root / "artifacts" / model_key(name, version)


def model_key(name: str, version: int | None = None) -> str:
    """``models/<name>`` or ``models/<name>/<version>``: the version's key in the artifact store (store/artifacts.py)."""
    return str(_versioned(PurePosixPath("models", _safe(name, "model name")), version, "model"))


def cache_root(root: Path) -> Path:
    """Local copies of versions kept in a bucket (``store/s3.py``); safe to delete."""
    return root / "cache" / "artifacts"


def datasets_root(root: Path) -> Path:
    return root / "artifacts" / "datasets"


def dataset_dir(root: Path, name: str, version: int | None = None) -> Path:
    """``artifacts/datasets/<name>/`` or, with a version, ``.../<name>/<version>/``."""
    return root / "artifacts" / dataset_key(name, version)


def dataset_key(name: str, version: int | None = None) -> str:
    """``datasets/<name>`` or ``datasets/<name>/<version>``: the version's key in the artifact store."""
    return str(_versioned(PurePosixPath("datasets", _safe(name, "dataset name")), version, "dataset"))


def pipeline_key(name: str, version: int | None = None) -> str:
    """``pipelines/<name>`` or ``pipelines/<name>/<version>``: a pipeline version's key in the artifact store."""
    return str(_versioned(PurePosixPath("pipelines", _safe(name, "pipeline name")), version, "pipeline"))


def _versioned(base: _P, version: int | None, what: str) -> _P:
    if version is None:
        return base
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{what} version must be an int >= 1, got {version!r}")
    return base / str(version)
