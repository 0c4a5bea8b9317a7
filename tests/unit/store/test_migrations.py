"""Versioned migrations (Alembic): the revisions build the tables the code maps, and older stores upgrade in place."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from modelyard.errors import StoreError
from modelyard.store import RunStore, migrations
from modelyard.store import db as store_db
from modelyard.store.tables import Base
from tests.support.databases import execute


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    store_db.close_all()


def test_head_is_the_newest_revision_and_the_schema_version() -> None:
    script = ScriptDirectory(str(Path(migrations.__file__).parent))
    assert script.get_heads() == [migrations.HEAD]
    assert int(migrations.HEAD) == store_db.SCHEMA_VERSION
    assert [s.revision for s in reversed(list(script.walk_revisions()))] == ["0001", "0002", "0003"]


def test_a_new_store_has_exactly_the_tables_the_code_maps(home: Path) -> None:
    db = store_db.database()
    with db.engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == migrations.HEAD
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def _legacy(home: Path, schema: int) -> None:
    """The store as a release before Alembic left it at ``schema``: ``meta`` only, no alembic_version."""
    execute(home, "DROP TABLE alembic_version", "UPDATE meta SET value=:v WHERE key='schema_version'", v=str(schema))


def test_a_schema_3_store_from_before_alembic_is_stamped_and_keeps_its_rows(home: Path) -> None:
    run = RunStore().create({"name": "kept"})
    _legacy(home, 3)
    assert RunStore().get(run.id).id == run.id
    db = store_db.database()
    assert db.schema_version() == 3
    with db.engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == migrations.HEAD


def test_a_revision_this_release_does_not_know_is_a_newer_store(home: Path) -> None:
    RunStore().list()
    execute(home, "UPDATE alembic_version SET version_num='0042'")
    with pytest.raises(StoreError, match=r"schema version 3 \(revision 0042\), newer than this modelyard"):
        RunStore().list()


def test_opening_a_current_store_does_not_import_alembic(home: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    RunStore().list()
    store_db.close_all()
    code = "import sys; from modelyard.store import RunStore; RunStore().list(); print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
