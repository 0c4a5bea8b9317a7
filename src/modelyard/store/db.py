"""The database of a store: schema, engine and session helper.

Several processes share one database (the CLI, training workers, server workers; with
PostgreSQL several servers too), so every read-modify-write runs under the store's write lock
(``session(write=True)``: SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's advisory lock; see
``engines``). Job claiming alone locks only the row it takes (``row_locks=True``: PostgreSQL's
``FOR UPDATE SKIP LOCKED``, so many workers claim at once).

The store's tables (``modelyard.store.tables``) are created and migrated by the versioned
revisions of ``modelyard.store.migrations`` (Alembic, the same on both back ends) and the
schema version is recorded in ``meta`` too, so an older release refuses a newer store; another
part with tables of its own (the control plane) has them created with ``ensure_tables``.
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

from sqlalchemy import URL, Connection, Engine, MetaData, insert, inspect, select, text, update
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session

from modelyard.errors import StoreError
from modelyard.store import engines, migrations, paths
from modelyard.store.engines import BUSY_TIMEOUT_MS
from modelyard.store.tables import Base, MetaRow

__all__ = [
    "SCHEMA_VERSION",
    "BUSY_TIMEOUT_MS",
    "Database",
    "database",
    "close_all",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3


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


@dataclass
class Database:
    """One store's database: an engine plus sessions that commit or roll back."""

    root: Path  # the store's home (its artifacts)
    url: URL
    engine: Engine
    # The same engine, but its transactions start with BEGIN IMMEDIATE on SQLite (see engines.sqlite_engine).
    writer: Engine = field(init=False)
    _ensured: set[int] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def path(self) -> Path:
        """The SQLite file (PostgreSQL: the home's would-be file, named only in messages)."""
        return Path(self.url.database) if self.backend == "sqlite" and self.url.database else paths.db_path(self.root)

    @property
    def where(self) -> str:
        """The database's name in messages: the file, or the URL without its password."""
        return engines.describe(self.url)

    @contextmanager
    def _write_transaction(self) -> Iterator[Connection]:
        with self.writer.begin() as conn:
            engines.write_lock(conn)
            yield conn

    def ensure_tables(self, metadata: MetaData) -> None:
        """Create the missing tables of ``metadata`` (tables kept outside the store's own), once per engine.

        Racing callers are safe: each ``create_all`` runs under the write lock and skips what exists.
        """
        if id(metadata) not in self._ensured:
            with self._write_transaction() as conn:
                metadata.create_all(conn)
            self._ensured.add(id(metadata))

    @contextmanager
    def session(self, *, write: bool = False, row_locks: bool = False) -> Iterator[Session]:
        """A session committed on success, rolled back on error.

        ``write=True`` takes the write lock at BEGIN (waiting up to the busy timeout),
        which every read-modify-write must use. ``row_locks=True`` (with ``write``): on
        PostgreSQL only the rows the statements lock (``with_for_update``) are held, not the
        store-wide lock; SQLite has no row locks and takes its write lock all the same.
        A database damaged after it was opened raises the one-line "corrupt" StoreError,
        never SQLAlchemy's own message.
        """
        with Session(self.writer if write else self.engine, expire_on_commit=False) as session:
            try:
                if write and not row_locks:
                    engines.write_lock(session)
                yield session
                session.commit()
            except BaseException as exc:
                session.rollback()
                corrupt = corrupt_error(self.path, exc) if isinstance(exc, DatabaseError) else None
                if corrupt is not None:
                    raise corrupt from None
                raise

    def _init_schema(self) -> None:
        with self._write_transaction() as conn:
            tables = set(inspect(conn).get_table_names())
            found = None
            if MetaRow.__tablename__ in tables:
                found = conn.scalar(select(MetaRow.value).where(MetaRow.key == "schema_version"))
            if found is None:
                self._refuse_new_store_beside_old(
                    sorted(tables - set(Base.metadata.tables) - {migrations.VERSION_TABLE})
                )
            elif int(found) > SCHEMA_VERSION:
                raise self._newer(found)
            revision = None
            if migrations.VERSION_TABLE in tables:
                revision = conn.scalar(text(f"SELECT version_num FROM {migrations.VERSION_TABLE}"))
            if found is not None and int(found) == SCHEMA_VERSION and revision == migrations.HEAD:
                return  # the common case: nothing to do, and Alembic is not even imported
            if revision is not None and revision not in migrations.revisions():
                raise self._newer(f"{found} (revision {revision})")
            # Before Alembic, a store knew its schema only from ``meta``: stamped there, then upgraded.
            legacy = int(found) if found is not None and revision is None else None
            ran = migrations.upgrade(conn, legacy_schema=legacy)
            if found is None:
                conn.execute(insert(MetaRow).values(key="schema_version", value=str(SCHEMA_VERSION)))
            else:
                conn.execute(update(MetaRow).where(MetaRow.key == "schema_version").values(value=str(SCHEMA_VERSION)))
            if found is not None and ran:
                logger.info("migrated the store at %s from schema %s to %d", self.root, found, SCHEMA_VERSION)

    def _newer(self, found: str) -> StoreError:
        return StoreError(
            f"The store at {self.root} has schema version {found}, "
            f"newer than this modelyard understands ({SCHEMA_VERSION}); upgrade modelyard",
            field="schema_version",
        )

    def _refuse_new_store_beside_old(self, foreign: list[str]) -> None:
        """A database without a schema version is new: fine in an empty home, an error beside old files.

        A deleted, emptied or foreign database next to existing model and run folders would
        otherwise become a new empty store whose next registration reuses ``name/1/``.
        """
        restore = (
            f"restore its {self.path.name}" if self.backend == "sqlite" else f"set {engines.ENV_VAR} to its database"
        )
        if foreign:
            raise StoreError(
                f"The store at {self.root} has a database that is not a modelyard store: {self.where} "
                f"holds tables {', '.join(foreign[:5])} but no modelyard schema version; "
                f"point MODELYARD_HOME at the store's own folder or {restore}",
                field="database",
            )
        existing = _existing_artifacts(self.root)
        if existing:
            raise StoreError(
                f"The store at {self.root} has an empty or missing database beside existing artifacts "
                f"({', '.join(str(p.relative_to(self.root)) for p in existing)}); "
                f"restore {self.where} from a backup, or move the artifacts folder aside to start an empty store",
                field="database",
            )

    def schema_version(self) -> int:
        with self.session() as session:
            value = session.scalar(select(MetaRow.value).where(MetaRow.key == "schema_version"))
        return int(value) if value is not None else 0


# Engines are cached per process and database file; a forked child gets its own
# (SQLite connections must not cross a fork). Pooled connections make a write ~10x
# cheaper than reconnecting (closing the last connection checkpoints the WAL), but each
# holds three file handles, so only the most recently used stores keep theirs; an
# evicted engine still works and simply reconnects.
_DATABASES: OrderedDict[tuple[int, Path], Database] = OrderedDict()
_MAX_OPEN = 8
_LOCK = threading.Lock()


def database(root: Path | None = None) -> Database:
    """The (cached) Database of the store at ``root`` (default: ``home()``), created on first use.

    Its tables live in the SQLite file of the home, or in the PostgreSQL database that
    ``MODELYARD_DATABASE_URL`` names (read on each call, so a changed value opens the new one).
    """
    root = paths.home(root)
    key = (os.getpid(), root)
    url = engines.database_url() or URL.create("sqlite", database=str(paths.db_path(root)))
    with _LOCK:
        db = _DATABASES.get(key)
        if db is not None and db.url != url:  # MODELYARD_DATABASE_URL changed since
            _dispose(key, _DATABASES.pop(key))
            db = None
        if db is None:
            paths.ensure_dir(root)
            if url.get_backend_name() == "sqlite":
                engine = engines.sqlite_engine(url.database)
            else:
                engine = engines.postgres_engine(url)
            db = Database(root=root, url=url, engine=engine)
            try:
                db._init_schema()
            except BaseException as exc:
                engine.dispose()
                corrupt = corrupt_error(db.path, exc) if isinstance(exc, DatabaseError) else None
                if corrupt is not None:
                    raise corrupt from None
                raise
            logger.debug("opened store database %s (schema %d)", db.where, SCHEMA_VERSION)
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
