"""The SQLite database of a store: schema, engine and session helper.

Several processes share one database (the CLI, training workers, server workers), so
every connection uses WAL (readers never block the writer) and a busy timeout (a
writer waits for another instead of failing). Transactions that read-then-write (next
model version, status changes) start with ``BEGIN IMMEDIATE`` so two processes cannot
both read the same state and then collide when they upgrade to a write lock, which in
WAL mode would fail at once without waiting.

The store's tables (``modelyard.store.tables``) are created on first use and the schema
version is recorded in ``meta`` so a later release can migrate an older store; another part
with tables of its own (the control plane) has them created with ``ensure_tables``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, MetaData, create_engine, event, insert, inspect, select, update
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from modelyard.errors import StoreError
from modelyard.status import LEGACY
from modelyard.store import paths
from modelyard.store.tables import Base, MetaRow, ModelAliasRow, RunRow

__all__ = [
    "SCHEMA_VERSION",
    "Database",
    "database",
    "close_all",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 30_000


# What SQLite says about a file that is not (or no longer) a sound database.
_CORRUPT_WORDS = ("file is not a database", "malformed", "file is encrypted")


def corrupt_error(path: Path, exc: BaseException) -> StoreError | None:
    """The one-line StoreError for a database SQLite calls damaged; None for any other fault.

    Locks, missing tables and constraint clashes are other errors; only what SQLite reports as
    a damaged file gets the "corrupt" message with its manual recovery steps.
    """
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, sqlite3.DatabaseError) or not any(w in str(orig).lower() for w in _CORRUPT_WORDS):
        return None
    return StoreError(
        f"The store at {path.parent} is corrupt: {path.name}: {' '.join(str(orig).split())}; "
        f"restore {path} from a backup (sqlite3's `.recover` command may salvage rows from it)",
        field="database",
    )


def _existing_artifacts(root: Path) -> list[Path]:
    """Model version folders and run folders already on disk (a few are enough to name)."""
    found: list[Path] = []
    models = paths.models_root(root)
    if models.is_dir():
        found += [v for m in sorted(models.iterdir()) if m.is_dir() for v in sorted(m.iterdir()) if v.name.isdigit()]
    runs = paths.runs_root(root)
    if runs.is_dir():
        found += sorted(r for r in runs.iterdir() if r.is_dir())
    return found[:3]


def _install_sqlite_hooks(engine: Engine) -> None:
    """WAL + busy timeout per connection; explicit BEGIN so IMMEDIATE is possible.

    pysqlite's own implicit transactions cannot say IMMEDIATE, so it is switched off
    and SQLAlchemy's ``begin`` event emits the BEGIN (recipe from SQLAlchemy's pysqlite
    dialect documentation, "Serializable isolation / Savepoints / Transactional DDL").
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


@dataclass
class Database:
    """One store's database: an engine plus sessions that commit or roll back."""

    path: Path
    engine: Engine
    # The same engine, but its transactions start with BEGIN IMMEDIATE (see _on_begin).
    writer: Engine = field(init=False)
    _ensured: set[int] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")

    def ensure_tables(self, metadata: MetaData) -> None:
        """Create the missing tables of ``metadata`` (tables kept outside the store's own), once per engine.

        Racing callers are safe: each ``create_all`` runs under the write lock and skips what exists.
        """
        if id(metadata) not in self._ensured:
            with self.writer.begin() as conn:
                metadata.create_all(conn)
            self._ensured.add(id(metadata))

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session committed on success, rolled back on error.

        ``write=True`` takes the write lock at BEGIN (waiting up to the busy timeout),
        which every read-modify-write must use. A database damaged after it was opened
        raises the one-line "corrupt" StoreError, never SQLAlchemy's own message.
        """
        with Session(self.writer if write else self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException as exc:
                session.rollback()
                corrupt = corrupt_error(self.path, exc) if isinstance(exc, DatabaseError) else None
                if corrupt is not None:
                    raise corrupt from None
                raise

    def _init_schema(self) -> None:
        with self.writer.begin() as conn:
            foreign = sorted(set(inspect(conn).get_table_names()) - set(Base.metadata.tables))
            Base.metadata.create_all(conn)
            found = conn.scalar(select(MetaRow.value).where(MetaRow.key == "schema_version"))
            if found is None:
                self._refuse_new_store_beside_old(foreign)
                conn.execute(insert(MetaRow).values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(found) > SCHEMA_VERSION:
                raise StoreError(
                    f"The store at {self.path.parent} has schema version {found}, "
                    f"newer than this modelyard understands ({SCHEMA_VERSION}); upgrade modelyard",
                    field="schema_version",
                )
            elif int(found) < SCHEMA_VERSION:
                # In the same BEGIN IMMEDIATE transaction: one process migrates, the others then see it done.
                for version in range(int(found) + 1, SCHEMA_VERSION + 1):
                    _MIGRATIONS[version](conn)
                conn.execute(update(MetaRow).where(MetaRow.key == "schema_version").values(value=str(SCHEMA_VERSION)))
                logger.info("migrated the store at %s from schema %s to %d", self.path.parent, found, SCHEMA_VERSION)

    def _refuse_new_store_beside_old(self, foreign: list[str]) -> None:
        """A database without a schema version is new: fine in an empty home, an error beside old files.

        A deleted, emptied or foreign database next to existing model and run folders would
        otherwise become a new empty store whose next registration reuses ``name/1/``.
        """
        if foreign:
            raise StoreError(
                f"The store at {self.path.parent} has a database that is not a modelyard store: {self.path} "
                f"holds tables {', '.join(foreign[:5])} but no modelyard schema version; "
                f"point MODELYARD_HOME at the store's own folder or restore its {self.path.name}",
                field="database",
            )
        existing = _existing_artifacts(self.path.parent)
        if existing:
            raise StoreError(
                f"The store at {self.path.parent} has an empty or missing database beside existing artifacts "
                f"({', '.join(str(p.relative_to(self.path.parent)) for p in existing)}); "
                f"restore {self.path} from a backup, or move the artifacts folder aside to start an empty store",
                field="database",
            )

    def schema_version(self) -> int:
        with self.session() as session:
            value = session.scalar(select(MetaRow.value).where(MetaRow.key == "schema_version"))
        return int(value) if value is not None else 0


def _runs_say_succeeded(conn: Connection) -> None:
    """Schema 2: runs and jobs share one status vocabulary (``completed`` runs become ``succeeded``)."""
    for old, new in LEGACY.items():
        conn.execute(update(RunRow).where(RunRow.status == old).values(status=new.value))


def _model_aliases(conn: Connection) -> None:
    """Schema 3: the ``model_aliases`` table (``NAME@ALIAS``); no alias exists yet, so bare names keep their versions.

    ``create_all`` has made it already; created here too so the step stands on its own.
    """
    ModelAliasRow.__table__.create(conn, checkfirst=True)


_MIGRATIONS = {2: _runs_say_succeeded, 3: _model_aliases}  # version → the step that brings the version before it there


# Engines are cached per process and database file; a forked child gets its own
# (SQLite connections must not cross a fork). Pooled connections make a write ~10x
# cheaper than reconnecting (closing the last connection checkpoints the WAL), but each
# holds three file handles, so only the most recently used stores keep theirs; an
# evicted engine still works and simply reconnects.
_DATABASES: OrderedDict[tuple[int, Path], Database] = OrderedDict()
_MAX_OPEN = 8
_LOCK = threading.Lock()


def database(root: Path | None = None) -> Database:
    """The (cached) Database of the store at ``root`` (default: ``home()``), created on first use."""
    root = paths.home(root)
    key = (os.getpid(), root)
    with _LOCK:
        db = _DATABASES.get(key)
        if db is None:
            paths.ensure_dir(root)
            path = paths.db_path(root)
            engine = create_engine(
                URL.create("sqlite", database=str(path)), connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}
            )
            _install_sqlite_hooks(engine)
            db = Database(path=path, engine=engine)
            try:
                db._init_schema()
            except BaseException as exc:
                engine.dispose()
                corrupt = corrupt_error(path, exc) if isinstance(exc, DatabaseError) else None
                if corrupt is not None:
                    raise corrupt from None
                raise
            logger.debug("opened store database %s (schema %d)", path, SCHEMA_VERSION)
            _DATABASES[key] = db
            while len(_DATABASES) > _MAX_OPEN:
                _dispose(*_DATABASES.popitem(last=False))
        _DATABASES.move_to_end(key)
        return db


def _dispose(key: tuple[int, Path], db: Database) -> None:
    # An engine inherited through fork belongs to the parent: forget its connections
    # without closing them (SQLAlchemy's documented fork recipe).
    db.engine.dispose(close=key[0] == os.getpid())


def close_all() -> None:
    """Dispose every cached engine (server shutdown, tests)."""
    with _LOCK:
        for key, db in _DATABASES.items():
            _dispose(key, db)
        _DATABASES.clear()
