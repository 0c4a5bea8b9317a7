"""Reads through the standard library's sqlite3: the same records as SQLAlchemy's rows, read-only, no SQLAlchemy."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path

import pytest

from modelyard.store import ModelStore, RunStore
from modelyard.store import db as store_db
from modelyard.store.records import model_version, run_record
from modelyard.store.sqlite import reading
from modelyard.store.tables import ModelVersionRow, RunRow
from tests.unit.store.test_models import register


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    store_db.close_all()


def test_listed_versions_equal_the_orm_rows(home: Path) -> None:
    store = ModelStore()
    one = register(store, seed=1, run_id="r-20261203-aaaaaa")
    register(store, seed=2, lineage={"parent": one.ref, "operation": "export", "options": {}})
    store.set_alias(one.ref, "production")
    with store.db.session() as session:
        want = [
            model_version(row, store.get(f"{row.name}:{row.version}").path, aliases)
            for row, aliases in (
                (session.get(ModelVersionRow, 1), ("production",)),
                (session.get(ModelVersionRow, 2), ()),
            )
        ]
    assert store.list() == want
    assert want[0].created_at.tzinfo is timezone.utc and want[0].created_at.microsecond == one.created_at.microsecond
    assert (
        store.for_run("r-20261203-aaaaaa") == dataclasses.replace(want[0], aliases=())
        and store.for_run("r-20261203-bbbbbb") is None
    )
    assert store.names() == ["fashion-mlp"] and store.get("fashion-mlp") == want[0]


def test_listed_runs_equal_the_orm_rows_with_their_history(home: Path) -> None:
    runs = RunStore()
    first = runs.create({"name": "a"}, {"torch": "x"})
    second = runs.create({"name": "b"})
    runs.start(second.id)
    runs.log_epoch(second.id, 1, {"loss": 0.5, "val_loss": 0.25})
    runs.log_epoch(second.id, 2, {"loss": 0.125})
    runs.finish(second.id, {"test": {"accuracy": 1.0}}, "b:1")
    with runs.db.session() as session:
        rows = [session.get(RunRow, second.id), session.get(RunRow, first.id)]
        history = [[{"epoch": 1, "loss": 0.5, "val_loss": 0.25}, {"epoch": 2, "loss": 0.125}], []]
        want = [run_record(row, h, runs.run_dir(row.id)) for row, h in zip(rows, history)]
    assert runs.list() == want == [runs.get(second.id), runs.get(first.id)]
    assert runs.list(status="succeeded") == want[:1] and runs.list(name="a", limit=1) == want[1:]
    assert runs.list(name="a", status="succeeded") == []


def test_a_read_connection_cannot_write(home: Path) -> None:
    register(ModelStore())
    with reading(home) as connection, pytest.raises(sqlite3.OperationalError, match="readonly"):
        connection.execute("DELETE FROM model_versions")
    assert len(ModelStore().list()) == 1


def test_listing_a_new_home_creates_the_store_as_before(tmp_path: Path) -> None:
    home = tmp_path / "new"
    assert ModelStore(home).list() == [] and RunStore(home).list() == []
    assert store_db.database(home).schema_version() == store_db.SCHEMA_VERSION


def test_listing_imports_no_sqlalchemy(home: Path) -> None:
    register(ModelStore())
    RunStore().create({"name": "a"})
    probe = (
        "import sys; from modelyard.store import ModelStore, RunStore; "
        "assert ModelStore().list() and ModelStore().get('fashion-mlp:1') and RunStore().list(); "
        "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
