"""Deleting runs, and collecting orphaned folders (version folders with no row, run folders with no run)."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelyard.errors import NotFoundError, StoreError
from modelyard.store import ModelStore, RunStore
from modelyard.store import db as store_db
from modelyard.store.gc import collect
from tests.support.databases import execute
from tests.unit.store.test_models import register


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    store_db.close_all()


def test_a_finished_run_is_deleted_with_its_history_and_folder() -> None:
    runs = RunStore()
    run = runs.create({"name": "fashion-mlp"})
    runs.start(run.id)
    runs.log_epoch(run.id, 1, {"loss": 0.5})
    (runs.checkpoint_dir(run.id) / "last.safetensors").write_bytes(b"x" * 10)
    with pytest.raises(StoreError, match=rf"Refused to delete run {run.id}: it is running; cancel it first"):
        runs.delete(run.id)
    runs.finish(run.id, {})
    kept = register(ModelStore(), run_id=run.id)
    assert runs.delete(run.id[-6:]).history == [{"epoch": 1, "loss": 0.5}]  # a prefix finds it, as everywhere
    assert not run.path.exists()
    with pytest.raises(NotFoundError):
        runs.get(run.id)
    assert ModelStore().get(kept.ref).load_state_dict()  # the version it registered stays whole


def test_collect_lists_then_removes_only_folders_no_row_owns(home: Path) -> None:
    store, runs = ModelStore(), RunStore()
    live, gone = register(store, seed=1), register(store, seed=2)
    run = runs.create({"name": "fashion-mlp"})
    runs.run_dir(run.id)
    stray_run = home / "artifacts" / "runs" / "r-20260101-dead00"
    (stray_run / "checkpoints").mkdir(parents=True)
    (stray_run / "checkpoints" / "last.safetensors").write_bytes(b"y" * 7)
    execute(home, "DELETE FROM model_versions WHERE version = 2")  # a version whose row went, its folder stayed
    parent = live.path.parent
    old_tmp, new_tmp, trash = parent / ".tmp-old", parent / ".tmp-new", parent / ".trash-3-abcd"
    datasets = home / "artifacts" / "datasets"
    old_upload, old_dataset_tmp = datasets / ".tmp-upload", datasets / "people" / ".tmp-reg"
    for folder in (old_tmp, new_tmp, trash, old_upload, old_dataset_tmp):
        folder.mkdir(parents=True)
    for folder in (old_tmp, old_upload, old_dataset_tmp):  # a registration or an upload killed 2 hours ago
        os.utime(folder, (time.time() - 7200, time.time() - 7200))
    want = {
        old_upload: "left by an interrupted registration",
        old_dataset_tmp: "left by an interrupted registration",
        gone.path: "version folder of fashion-mlp:2, which has no row",
        old_tmp: "left by an interrupted registration",
        trash: "left by an interrupted delete",
        stray_run: "folder of run r-20260101-dead00, which has no row",
    }
    listed = collect()
    assert {o.path: o.reason for o in listed} == want and all(p.exists() for p in want)
    assert {o.path: o.size_bytes for o in listed}[stray_run] == 7
    assert {o.path for o in collect(remove=True)} == set(want)
    assert not any(p.exists() for p in want)
    assert new_tmp.is_dir() and live.path.is_dir() and runs.get(run.id).path.is_dir()  # a registration in flight
    assert collect() == []


def test_a_delete_whose_commit_fails_keeps_its_row_and_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    store = ModelStore()
    kept = register(store)

    def refuse(self: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as patch, pytest.raises(sqlite3.OperationalError):
        patch.setattr("sqlalchemy.orm.Session.commit", refuse)
        store.delete(kept.ref)
    assert kept.path.is_dir() and ModelStore().get(kept.ref).load_state_dict()  # folder back, row still there
    assert not [p for p in kept.path.parent.iterdir() if p.name.startswith(".trash-")]
