"""Engines for the store's two back ends: an SQLite file in the store's home (the default) or PostgreSQL.

``MODELYARD_DATABASE_URL`` (``postgresql://...``, driven by psycopg 3) puts the store's tables
in a PostgreSQL database that several servers and their workers can share; the artifacts stay
in the home folder. SQLite connections use WAL (readers never block the writer) and a busy
timeout (a writer waits for another instead of failing); transactions that read-then-write
start with ``BEGIN IMMEDIATE`` so two processes cannot both read the same state and then collide
when they upgrade to a write lock, which in WAL mode would fail at once without waiting.
PostgreSQL gets the same guarantee from a transaction-scoped advisory lock (``write_lock``),
and waits for a lock at most as long as SQLite's busy timeout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session

from modelyard.errors import StoreError, optional_dependency

__all__ = [
    "ENV_VAR",
    "BUSY_TIMEOUT_MS",
    "database_url",
    "sqlite_engine",
    "sqlite_hooks",
    "postgres_engine",
    "write_lock",
    "describe",
]

ENV_VAR = "MODELYARD_DATABASE_URL"
BUSY_TIMEOUT_MS = 30_000
# pg_advisory_xact_lock's key for the store-wide write lock ("modelyard" in ASCII, fits a bigint).
WRITE_LOCK_KEY = 0x6D6F64656C79


def database_url(value: str | None = None) -> URL | None:
    """The PostgreSQL URL of ``value`` (default: ``MODELYARD_DATABASE_URL``), or None for the home's SQLite file."""
    raw = os.environ.get(ENV_VAR, "") if value is None else value
    if not raw.strip():
        return None
    try:
        url = make_url(raw.strip())
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() not in ("postgresql", "sqlite"):
        shown = raw if url is None else url.render_as_string(hide_password=True)
        raise StoreError(
            f"Invalid value for `{ENV_VAR}`: expected a PostgreSQL URL like postgresql://USER@HOST/DB "
            f"(or empty for the SQLite file in the store's home), received {shown!r}",
            field=ENV_VAR,
        )
    if url.get_backend_name() == "sqlite":
        return None if url.database in (None, "") else url
    if url.get_driver_name() not in ("psycopg", "postgresql", ""):
        raise StoreError(
            f"Invalid value for `{ENV_VAR}`: the PostgreSQL driver is psycopg (postgresql+psycopg://...), "
            f"received {url.drivername!r}",
            field=ENV_VAR,
        )
    return url.set(drivername="postgresql+psycopg")


def describe(url: URL) -> str:
    """The database's name in messages (never its password)."""
    return url.database if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)


def sqlite_engine(path: Path | str) -> Engine:
    """An engine on the SQLite file at ``path``: WAL + busy timeout per connection; explicit BEGIN so IMMEDIATE is possible.

    pysqlite's own implicit transactions cannot say IMMEDIATE, so it is switched off
    and SQLAlchemy's ``begin`` event emits the BEGIN (recipe from SQLAlchemy's pysqlite
    dialect documentation, "Serializable isolation / Savepoints / Transactional DDL").
    """
    engine = create_engine(URL.create("sqlite", database=str(path)), connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
    sqlite_hooks(engine)
    return engine


def sqlite_hooks(engine: Engine, *, begin: str = "DEFERRED") -> None:
    """The connection settings of ``sqlite_engine`` on an engine made elsewhere (Optuna's, ``tuning/storage.py``).

    ``begin``: the mode of a transaction that does not ask for one with the ``sqlite_begin`` option.
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
        mode = conn.get_execution_options().get("sqlite_begin", begin)
        conn.exec_driver_sql(f"BEGIN {mode}")


def postgres_engine(url: URL) -> Engine:
    """An engine on PostgreSQL through psycopg 3 (the ``postgres`` extra)."""
    with optional_dependency("postgres", f"The PostgreSQL database of {ENV_VAR}"):
        import psycopg  # noqa: F401 - imported here so a missing driver is the one-line error

    # pre_ping: a server restarted under a long-running process costs one reconnect, not a failed request.
    engine = create_engine(url, pool_pre_ping=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Waits for a row or advisory lock end like SQLite's busy timeout instead of hanging forever.
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = {BUSY_TIMEOUT_MS}")
        dbapi_connection.commit()

    return engine


def write_lock(executor: Connection | Session) -> None:
    """On PostgreSQL, take the store-wide write lock for the session's transaction (SQLite took it at BEGIN).

    Every read-modify-write of the store (next model version, status changes, a job's lease)
    relies on no other writer running between its read and its write; the advisory lock gives
    PostgreSQL the serial order that SQLite's single writer gives. Released at commit or rollback.
    """
    dialect = executor.dialect if isinstance(executor, Connection) else executor.get_bind().dialect
    if dialect.name == "postgresql":
        executor.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITE_LOCK_KEY})
