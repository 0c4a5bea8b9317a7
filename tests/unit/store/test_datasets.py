"""Stored datasets: whole versions or nothing, numbers never reused, files checked on read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelyard.errors import InputError, NotFoundError, StoreError
from modelyard.store.datasets import DATA_FILE, DatasetStore


def _register(store: DatasetStore, name: str = "d") -> str:
    return store.register(name, table=b"PAR1 table bytes", report={"rows_out": 1}, lineage={"steps": []}).ref


def test_versions_count_up_and_are_never_reused(home: Path) -> None:
    store = DatasetStore()
    assert [_register(store), _register(store)] == ["d:1", "d:2"]
    shutil.rmtree(store.get("d:2").path)  # a deleted newest version
    assert _register(store) == "d:3"
    assert store.get("d").ref == store.get("d:latest").ref == "d:3"
    assert store.get("d:1").report == {"rows_out": 1}
    assert [v.ref for v in store.list()] == ["d:1", "d:3"]
    assert not [p for p in (home / "artifacts" / "datasets" / "d").iterdir() if p.name.startswith(".tmp")]


def test_a_failed_registration_leaves_nothing(home: Path) -> None:
    with pytest.raises(StoreError):
        DatasetStore().register("d", table=b"x", report={"bad": object()}, lineage={})
    assert DatasetStore().list() == []
    assert not list((home / "artifacts" / "datasets").rglob("*")) or all(
        p.is_dir() for p in (home / "artifacts" / "datasets").rglob("*")
    )


def test_lookups_that_miss_are_one_line(home: Path) -> None:
    store = DatasetStore()
    with pytest.raises(NotFoundError, match=r"Dataset 'd' not found for `ref` \(stored datasets: none\)"):
        store.get("d")
    _register(store)
    with pytest.raises(NotFoundError, match=r"Dataset d:7 not found for `ref` \(its versions: 1\)"):
        store.get("d:7")
    with pytest.raises(InputError, match="expected a dataset reference NAME or NAME:VERSION"):
        store.get("../etc")


def test_a_changed_table_is_refused_on_read(home: Path) -> None:
    store = DatasetStore()
    _register(store)
    found = store.get("d:1")
    (found.path / DATA_FILE).write_bytes(b"PAR1 other bytes")
    with pytest.raises(StoreError, match="data.parquet is not the file registered"):
        found.data_path()
