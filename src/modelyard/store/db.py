"""The SQLite database of a store: schema, engine and session helper.

Several processes share one database (the CLI, training workers, server workers), so
every connection uses WAL (readers never block the writer) and a busy timeout (a
writer waits for another instead of failing). Transactions that read-then-write (next
model version, status changes) start with ``BEGIN IMMEDIATE`` so two processes cannot
both read the same state and then collide when they upgrade to a write lock, which in
WAL mode would fail at once without waiting.

Tables are created on first use and the schema version is recorded in ``meta`` so a
later release can migrate an older store.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    URL,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

from modelyard.errors import StoreError
from modelyard.store import paths

__all__ = [
    "SCHEMA_VERSION",
    "Base",
    "RunRow",
    "MetricRow",
    "ModelVersionRow",
    "MetaRow",
    "JobRow",
    "DeploymentRow",
    "Database",
    "database",
    "close_all",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class MetaRow(Base):
    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunRow(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec_json: Mapped[str] = mapped_column(Text)
    env_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    model_ref: Mapped[str | None] = mapped_column(String(96))
    summary_json: Mapped[str | None] = mapped_column(Text)


class MetricRow(Base):
    __tablename__ = "run_metrics"
    __table_args__ = (
        UniqueConstraint("run_id", "epoch", "key", name="uq_run_metrics_run_epoch_key"),
        Index("ix_run_metrics_run_id", "run_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(32), ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(128))
    # NULL stands for a non-finite value (SQLite stores NaN as NULL anyway).
    value: Mapped[float | None] = mapped_column(Float)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
        Index("ix_model_versions_run_id", "run_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    metrics_json: Mapped[str] = mapped_column(Text, default="{}")
    lineage_json: Mapped[str] = mapped_column(Text, default="{}")
    task: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text, default="")
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)


class JobRow(Base):
    """A training job of the control plane: a spec in a queue, leased by one worker at a time.

    status: queued → running → succeeded | failed | cancelled (a lost lease puts a running
    job back to queued while attempts < max_attempts). ``run_id`` is set on the first
    attempt and reused by every retry, so a job resumes its own run and registers at most
    one model version (registration is idempotent per run).
    """

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker_id: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested: Mapped[int] = mapped_column(Integer, default=0)
    run_id: Mapped[str | None] = mapped_column(String(32))
    model_ref: Mapped[str | None] = mapped_column(String(96))
    error: Mapped[str | None] = mapped_column(Text)
    progress_json: Mapped[str | None] = mapped_column(Text)
    submitted_by: Mapped[str | None] = mapped_column(String(64))


class DeploymentRow(Base):
    """A deployment: a model version served by ``replicas`` supervised serving processes.

    ``desired`` is what the user asked for (running | stopped); ``status`` is what the
    supervisor observed (starting | running | degraded | failed | stopped). A server
    restart brings every ``desired == running`` deployment back up.
    """

    __tablename__ = "deployments"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    model_ref: Mapped[str] = mapped_column(String(96))
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    options_json: Mapped[str] = mapped_column(Text, default="{}")
    desired: Mapped[str] = mapped_column(String(16), default="running")
    status: Mapped[str] = mapped_column(String(16), default="starting")
    error: Mapped[str | None] = mapped_column(Text)
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state_json: Mapped[str] = mapped_column(Text, default="{}")


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

    def __post_init__(self) -> None:
        self.writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session committed on success, rolled back on error.

        ``write=True`` takes the write lock at BEGIN (waiting up to the busy timeout),
        which every read-modify-write must use.
        """
        with Session(self.writer if write else self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def _init_schema(self) -> None:
        with self.writer.begin() as conn:
            Base.metadata.create_all(conn)
            found = conn.scalar(select(MetaRow.value).where(MetaRow.key == "schema_version"))
            if found is None:
                conn.execute(insert(MetaRow).values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(found) > SCHEMA_VERSION:
                raise StoreError(
                    f"The store at {self.path.parent} has schema version {found}, "
                    f"newer than this modelyard understands ({SCHEMA_VERSION}); upgrade modelyard",
                    field="schema_version",
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
            except BaseException:
                engine.dispose()
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
