"""Where the store lives on disk: ``MODELYARD_HOME`` (default ``~/.modelyard``).

Layout::

    <home>/modelyard.db                       SQLite: runs, metrics, model versions
    <home>/artifacts/runs/<run_id>/           checkpoints/, plots, logs of one run
    <home>/artifacts/models/<name>/<version>/ one registered model version

Nothing is created at import time; folders appear the first time a store needs them.
Every path here is derived from a validated name or id, never from a path a user gave,
so no store API can be pointed outside its home.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "ENV_VAR",
    "DB_FILENAME",
    "home",
    "db_path",
    "runs_root",
    "run_dir",
    "models_root",
    "model_dir",
    "ensure_dir",
]

ENV_VAR = "MODELYARD_HOME"
DB_FILENAME = "modelyard.db"

# Ids and names that may become a folder name: the model-name pattern of spec.py plus
# the run-id alphabet. Checked again here so a bug elsewhere cannot escape the home.
_SAFE_PART = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def home(path: str | os.PathLike[str] | None = None) -> Path:
    """The store root: ``path`` if given, else ``$MODELYARD_HOME``, else ``~/.modelyard``.

    Resolved to an absolute path but not created.
    """
    if path is None:
        path = os.environ.get(ENV_VAR) or "~/.modelyard"
    return Path(path).expanduser().resolve()


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
    base = models_root(root) / _safe(name, "model name")
    if version is None:
        return base
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"model version must be an int >= 1, got {version!r}")
    return base / str(version)
