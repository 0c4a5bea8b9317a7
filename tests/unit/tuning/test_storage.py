"""The study lives in the store's own database without disturbing the store's schema checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import modelyard
from modelyard.server.tables import ControlBase
from modelyard.store import ModelStore, RunStore
from modelyard.store.db import SCHEMA_VERSION, close_all, database
from modelyard.store.migrations import HEAD
from modelyard.store.tables import Base
from modelyard.tuning.storage import OPTUNA_TABLES
from tests.support.tuning import SEARCH, optuna_study, tiny_spec


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_optunas_tables_sit_beside_the_stores_in_one_file_and_the_store_still_opens(home: Path) -> None:
    modelyard.tune(tiny_spec(epochs=2), SEARCH[:1], trials=2, metric="val_accuracy", pruner="none", study="t")
    path = home / "modelyard.db"
    found = _tables(path)
    assert set(OPTUNA_TABLES) <= found  # Optuna's own list of tables, kept in tuning/storage.py
    ours = set(Base.metadata.tables) | set(ControlBase.metadata.tables)
    assert not set(OPTUNA_TABLES) & ours and ours - set(ControlBase.metadata.tables) <= found
    with sqlite3.connect(path) as conn:  # the one shared table still holds the store's revision
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    close_all()  # a fresh process: the schema check runs again over a file holding Optuna's tables too
    assert database(home).schema_version() == SCHEMA_VERSION
    assert len(RunStore().list()) == 2 and [v.ref for v in ModelStore().list()] == ["digits-tune:1"]
    assert len(optuna_study(home, "t").trials) == 2  # Optuna itself reads the study from the same file


def test_every_optuna_transaction_takes_the_write_lock_first(home: Path) -> None:
    from modelyard.tuning.storage import study_storage

    engine = study_storage(home).engine
    seen: list[str] = []
    from sqlalchemy import event, text

    event.listen(engine, "before_cursor_execute", lambda conn, cur, stmt, *a: seen.append(stmt))
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
    assert seen[0] == "BEGIN IMMEDIATE"
