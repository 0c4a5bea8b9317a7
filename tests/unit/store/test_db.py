"""Store plumbing: home resolution, lazy folders, SQLite settings, schema version,
strict JSON, atomic writes and the public surface."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import text

import modelyard.store
from modelyard._files import atomic_write_bytes, dumps_json, to_jsonable
from modelyard.errors import StoreError
from modelyard.status import Status
from modelyard.store import ModelStore, RunStore, home, paths
from modelyard.store import db as store_db
from tests.support.databases import execute


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    store_db.close_all()


def test_home_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "h"))
    assert home() == tmp_path / "h"
    assert home(tmp_path / "explicit") == tmp_path / "explicit"
    monkeypatch.setenv("MODELYARD_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert home() == tmp_path / "user" / ".modelyard"
    monkeypatch.delenv("MODELYARD_HOME")
    assert home() == tmp_path / "user" / ".modelyard"
    assert not (tmp_path / "user").exists()  # resolving creates nothing


@pytest.mark.sqlite_only
def test_folders_appear_lazily(home: Path) -> None:
    runs, models = RunStore(), ModelStore()
    assert not home.exists()  # constructing stores touches nothing
    assert models.list() == [] and runs.list() == []
    assert (home / "modelyard.db").is_file() and not (home / "artifacts").exists()


def test_paths_refuse_unsafe_parts(tmp_path: Path) -> None:
    assert paths.model_dir(tmp_path, "a.b-c_d", 3) == tmp_path / "artifacts" / "models" / "a.b-c_d" / "3"
    for bad in ("..", "../x", "/abs", "a/b", ".hidden", ""):
        with pytest.raises(ValueError):
            paths.model_dir(tmp_path, bad)
        with pytest.raises(ValueError):
            paths.run_dir(tmp_path, bad)
    with pytest.raises(ValueError):
        paths.model_dir(tmp_path, "ok", 0)


@pytest.mark.sqlite_only
def test_sqlite_runs_in_wal_with_a_busy_timeout(home: Path) -> None:
    db = store_db.database()
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == store_db.BUSY_TIMEOUT_MS
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    with sqlite3.connect(home / "modelyard.db") as raw:  # persisted in the file, seen by any process
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"runs", "run_metrics", "model_versions", "meta"} <= tables
        unique = raw.execute("SELECT sql FROM sqlite_master WHERE name='model_versions'").fetchone()[0]
        assert "UNIQUE (name, version)" in unique
    raw.close()


@pytest.mark.sqlite_only
def test_only_recent_databases_stay_open(tmp_path: Path) -> None:
    first = RunStore(tmp_path / "0")
    run = first.create({"name": "x"})
    db0 = store_db.database(tmp_path / "0")
    pool0 = db0.engine.pool
    assert pool0.checkedin() >= 1
    for i in range(1, store_db._MAX_OPEN + 1):
        RunStore(tmp_path / str(i)).list()
    assert len(store_db._DATABASES) == store_db._MAX_OPEN
    assert (os.getpid(), tmp_path / "0") not in store_db._DATABASES
    assert db0.engine.pool is not pool0  # disposed: its pooled connections were closed
    assert first.get(run.id).id == run.id  # and the store still works, reopening


def test_schema_version_is_recorded_and_newer_stores_refused(home: Path) -> None:
    assert store_db.database().schema_version() == store_db.SCHEMA_VERSION == 3
    execute(home, "UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="schema version 99, newer than this modelyard understands"):
        RunStore().list()


def _schema_1_store(home: Path, statuses: list[str]) -> list[str]:
    """A store as a schema-1 release left it: runs finished well say ``completed``."""
    store = RunStore()
    ids = [store.create({"name": f"old-{i}"}).id for i in range(len(statuses))]
    for run_id, status in zip(ids, statuses):
        execute(home, "UPDATE runs SET status=:status WHERE id=:id", status=status, id=run_id)
    # Written before the store had Alembic: its schema only in meta.
    execute(home, "UPDATE meta SET value='1' WHERE key='schema_version'", "DROP TABLE alembic_version")
    return ids


def test_a_schema_1_store_is_migrated_once_and_its_completed_runs_read_as_succeeded(home: Path) -> None:
    done, failed, queued = _schema_1_store(home, ["completed", "failed", "queued"])
    store = RunStore()
    assert [store.get(i).status for i in (done, failed, queued)] == [Status.SUCCEEDED, Status.FAILED, Status.QUEUED]
    assert [r.id for r in store.list(status="succeeded")] == [done]
    assert store_db.database().schema_version() == store_db.SCHEMA_VERSION
    stored = execute(home, "SELECT status FROM runs")  # rewritten on disk, not only mapped on read
    assert sorted(r[0] for r in stored) == ["failed", "queued", "succeeded"]


def test_an_old_word_written_after_the_migration_still_reads(home: Path) -> None:
    (run_id,) = _schema_1_store(home, ["queued"])
    RunStore().list()  # migrated
    # e.g. an older process that had the store open
    execute(home, "UPDATE runs SET status='completed' WHERE id=:id", id=run_id)
    record = RunStore().get(run_id)
    assert record.status is Status.SUCCEEDED and record.to_dict()["status"] == "succeeded"


def test_to_jsonable_converts_numpy_torch_and_nan() -> None:
    value = {
        "a": np.float32(0.5),
        "b": np.arange(3),
        "c": torch.tensor([[1, 2]]),
        "d": float("nan"),
        "e": (1, np.int64(2)),
        "f": torch.tensor(3.0),
        7: "key",
    }
    assert to_jsonable(value) == {"a": 0.5, "b": [0, 1, 2], "c": [[1, 2]], "d": None, "e": [1, 2], "f": 3.0, "7": "key"}
    assert json.loads(dumps_json({"x": float("inf")})) == {"x": None}
    with pytest.raises(
        StoreError, match=r"Cannot store `metrics.nested\[1\]`: expected JSON-compatible data .* received set"
    ):
        dumps_json({"nested": [1, {2}]}, "metrics")


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]

    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"two" and [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_public_surface() -> None:
    assert sorted(modelyard.store.__all__) == sorted(
        ["RunStore", "ModelStore", "RunRecord", "ModelVersion", "Status", "home"]
    )
    for name in modelyard.store.__all__:
        assert getattr(modelyard.store, name) is not None


def test_importing_store_and_plots_has_no_heavy_side_effects(tmp_path: Path) -> None:
    code = (
        "import sys, modelyard.store, modelyard.plots; "
        "print(sorted(m for m in ('torch', 'matplotlib', 'safetensors', 'matplotlib.pyplot') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "MODELYARD_HOME": str(tmp_path / "h")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
    assert not (tmp_path / "h").exists()


# -- a database that does not match its artifacts ---------------------------------------------


def _register(home: Path, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    mv = ModelStore(home).register(
        "m", state_dict={"w": torch.randn(3, generator=g)}, spec={"name": "m"}, preprocess={}, metrics={}
    )
    return mv.path


def _backup(db: Path, to: Path) -> None:
    with sqlite3.connect(db) as src, sqlite3.connect(to) as dst:
        src.backup(dst)


def _replace_db(home: Path, data: bytes | None) -> None:
    """The operator's move: the database file swapped (or deleted) while no process has it open."""
    store_db.close_all()
    for suffix in ("", "-wal", "-shm"):
        paths.db_path(home).with_name(paths.DB_FILENAME + suffix).unlink(missing_ok=True)
    if data is not None:
        paths.db_path(home).write_bytes(data)


@pytest.mark.sqlite_only
def test_an_older_backup_never_lets_registration_overwrite_a_newer_version(home: Path, tmp_path: Path) -> None:
    _register(home, seed=1)
    _backup(paths.db_path(home), tmp_path / "backup.db")
    v2 = _register(home, seed=2)
    weights = (v2 / "weights.safetensors").read_bytes()
    _replace_db(home, (tmp_path / "backup.db").read_bytes())
    with pytest.raises(StoreError, match=r"Refused to register m:2: its folder .*restore the newest backup"):
        _register(home, seed=3)
    assert (v2 / "weights.safetensors").read_bytes() == weights


@pytest.mark.sqlite_only
@pytest.mark.parametrize("data", [None, b""], ids=["deleted", "emptied"])
def test_a_missing_or_empty_database_beside_artifacts_is_refused(home: Path, data: bytes | None) -> None:
    folder = _register(home)
    weights = (folder / "weights.safetensors").read_bytes()
    _replace_db(home, data)
    message = r"empty or missing database beside existing artifacts \(artifacts/models/m/1\); restore .* backup"
    for call in (lambda: _register(home), lambda: ModelStore(home).list(), lambda: RunStore(home).list()):
        with pytest.raises(StoreError, match=message):
            call()
    assert (folder / "weights.safetensors").read_bytes() == weights
    store_db.close_all()
    with sqlite3.connect(paths.db_path(home)) as conn:  # no tables were created in it either
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    conn.close()


@pytest.mark.sqlite_only
def test_a_foreign_database_is_not_taken_for_a_new_store(home: Path) -> None:
    paths.ensure_dir(home)
    with sqlite3.connect(paths.db_path(home)) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    conn.close()
    with pytest.raises(StoreError, match="is not a modelyard store: .* holds tables users but no modelyard schema"):
        ModelStore(home).list()
    with sqlite3.connect(paths.db_path(home)) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["users"]
    conn.close()


@pytest.mark.sqlite_only
def test_a_garbage_database_is_one_line_naming_the_store(home: Path) -> None:
    _register(home)
    _replace_db(home, b"this is not sqlite " * 300)
    message = r"The store at .* is corrupt: modelyard.db: file is not a database; restore .* from a backup"
    for call in (lambda: ModelStore(home).list(), lambda: RunStore(home).list(), lambda: _register(home)):
        with pytest.raises(StoreError, match=message) as info:
            call()
        assert "sqlalche" not in str(info.value) and "\n" not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.sqlite_only
def test_a_database_damaged_while_open_is_the_same_one_line(home: Path) -> None:
    _register(home)
    store_db.close_all()
    db = paths.db_path(home)
    with sqlite3.connect(db) as conn:  # one file, no WAL: the damage below hits the table's own page
        conn.execute("PRAGMA journal_mode = DELETE")
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'model_versions'").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(db.read_bytes())
    data[(page - 1) * size : page * size] = b"\xff" * size
    db.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"is corrupt: modelyard.db: database disk image is malformed; restore"):
        ModelStore(home).list()
