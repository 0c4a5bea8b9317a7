"""The control plane's tables: kept off the run/model store's metadata, created in the store's database on first use."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect

from modelyard.server.jobs.store import JobStore
from modelyard.server.tables import ControlBase, control_database
from modelyard.store import RunStore
from modelyard.store import db as store_db
from modelyard.store.tables import Base
from tests.support.jobs import tiny_spec


def _tables(home: Path) -> set[str]:
    """The tables in the store's database, on either back end (a connection of its own, as another process)."""
    engine = create_engine(store_db.database(home).url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_store_knows_nothing_of_the_control_planes_tables() -> None:
    assert set(Base.metadata.tables) == {"meta", "runs", "run_metrics", "model_versions", "model_aliases"}
    assert set(ControlBase.metadata.tables) == {"jobs", "job_triggers", "deployments"}


def test_control_tables_are_added_to_a_store_opened_before_the_control_plane(home: Path) -> None:
    run = RunStore(home).create({"name": "x"})  # the store's database, opened and cached without them
    assert "jobs" not in _tables(home)
    job = JobStore(home).submit(tiny_spec(), max_attempts=2)
    assert {"jobs", "deployments", "runs", "meta"} <= _tables(home)
    assert control_database(home) is store_db.database(home)  # one engine for both
    store_db.close_all()
    assert JobStore(home).get(job.id).id == job.id and RunStore(home).get(run.id).id == run.id
