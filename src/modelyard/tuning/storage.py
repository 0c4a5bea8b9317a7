"""Optuna's studies kept in the store's own database (``modelyard.db``, or the store's PostgreSQL).

Optuna's ``RDBStorage`` creates its tables (``studies``, ``trials``, ``trial_params``, ...,
``version_info``) beside the store's in the same database, so one file holds runs, models and
studies, is backed up together, and a trial's run id points into the same database. The store's
checks are unaffected: the store's schema is always created first (``database(home)`` below).

One table is shared: ``alembic_version``, which both the store's migrations and Optuna's use for
their revision. It belongs to the store. Optuna only stamps it when it is empty (never, as the
store has stamped it already) and only reads it for its compatibility check, which is therefore
switched off (``skip_compatibility_check``: the store's revision is not one Optuna knows). Optuna
writes its own schema version to ``version_info``; the ``tune`` extra pins Optuna below 6.

On SQLite Optuna's engine gets the store's connection settings (WAL, busy timeout) and, unlike
the store, begins *every* transaction with ``BEGIN IMMEDIATE``: Optuna reads then writes (a new
trial's number is the count of the trials before it, under a ``FOR UPDATE`` that SQLite ignores),
which under deferred transactions lets two processes read the same count, or fails at once when
a reader upgrades to a writer in WAL mode. Taking the write lock first serializes those short
transactions across processes. PostgreSQL honours ``FOR UPDATE`` itself.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from modelyard.errors import optional_dependency
from modelyard.store import paths
from modelyard.store.db import database
from modelyard.store.engines import BUSY_TIMEOUT_MS, sqlite_hooks

__all__ = ["study_storage", "OPTUNA_TABLES"]

#: The tables Optuna 3-5 creates (its ``models.py``) besides ``alembic_version``; none may clash with modelyard's own.
OPTUNA_TABLES = (
    "studies",
    "study_directions",
    "study_user_attributes",
    "study_system_attributes",
    "trials",
    "trial_user_attributes",
    "trial_system_attributes",
    "trial_params",
    "trial_values",
    "trial_intermediate_values",
    "trial_heartbeats",
    "version_info",
)

_STORAGES: dict[tuple[int, Path], Any] = {}
_LOCK = threading.Lock()


def study_storage(home: str | Path | None = None) -> Any:
    """The (cached, per process) Optuna storage over the store at ``home``."""
    with optional_dependency("tune", "modelyard tune"):
        import optuna
    root = paths.home(home)
    key = (os.getpid(), root)
    with _LOCK:
        storage = _STORAGES.get(key)
        if storage is None:
            db = database(root)  # the store's schema first: Optuna's tables are never the first in the file
            sqlite = db.backend == "sqlite"
            storage = optuna.storages.RDBStorage(
                db.url.render_as_string(hide_password=False),
                engine_kwargs={"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000}} if sqlite else {},
                skip_compatibility_check=True,  # alembic_version holds the store's revision, see above
            )
            if sqlite:
                sqlite_hooks(storage.engine, begin="IMMEDIATE")
                storage.engine.dispose()  # connections opened while creating the tables lack the hooks
            _STORAGES[key] = storage
        return storage
