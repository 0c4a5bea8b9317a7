"""The store's SQLite file as the standard library sees it: settings, schema version, damage, reads.

Reads go through ``sqlite3`` directly: the light commands (``models``, ``models show``, ``runs``)
then never import SQLAlchemy, whose import alone takes 0.3 s of their 0.5 s budget on a small
machine (docs/performance.md, "CLI start-up"). Writes, schema creation and migrations stay with
SQLAlchemy in ``modelyard.store.db``; ``reading`` hands over to it when the file is missing or
its schema is not this release's, and inside a write transaction the same read functions run on
the session's own connection (``db.driver_connection``), so each query is written once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from modelyard.errors import StoreError
from modelyard.store import paths

__all__ = ["SCHEMA_VERSION", "BUSY_TIMEOUT_MS", "corrupt_error", "configure", "reading", "query", "stored_time"]

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


def configure(connection: sqlite3.Connection) -> None:
    """WAL (readers never block the writer), a busy timeout, foreign keys: every connection of a store."""
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def stored_time(value: str | None) -> datetime | None:
    """A time column as SQLAlchemy's SQLite dialect stores it (naive UTC text) → an aware UTC datetime."""
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=timezone.utc)


def _open(path: Path) -> sqlite3.Connection | None:
    """A read-only connection if the file holds this release's schema; None when SQLAlchemy must see it first."""
    if not path.is_file():
        return None  # a new store: database() creates it (or refuses beside old artifacts)
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        found = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # no meta table: a foreign or empty database, database() words it
        connection.close()
        return None
    except BaseException:
        connection.close()
        raise
    if found is None or found[0] != str(SCHEMA_VERSION):
        connection.close()
        return None  # older (migrated there) or newer (refused there)
    return connection


@contextmanager
def reading(root: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the store at ``root``, in one transaction (one consistent snapshot).

    A missing file, a database without this release's schema version or one that needs migrating
    first goes through ``modelyard.store.db.database`` once (which creates, migrates or refuses
    it, with its own messages). A damaged file is the one-line "corrupt" StoreError.
    """
    path = paths.db_path(root)
    try:
        connection = _open(path)
        if connection is None:
            from modelyard.store.db import database

            database(root)
            connection = _open(path)
            if connection is None:  # pragma: no cover - database() leaves a current schema or raises
                raise StoreError(f"The store at {root} has no readable schema version", field="database")
    except sqlite3.DatabaseError as exc:
        _reraise(path, exc)
    try:
        connection.execute("BEGIN")
        yield connection
    except sqlite3.DatabaseError as exc:
        _reraise(path, exc)
    finally:
        connection.close()


def _reraise(path: Path, exc: sqlite3.DatabaseError) -> None:
    corrupt = corrupt_error(path, exc)
    if corrupt is not None:
        raise corrupt from None
    raise exc


def query(connection: sqlite3.Connection, sql: str, params: tuple[Any, ...] = ()) -> list[SimpleNamespace]:
    """The rows of one query with attribute access, like the ORM's rows (``row.name``).

    Columns named ``*_at`` are times and come back as aware UTC datetimes, as ``UTCDateTime`` gives them.
    """
    cursor = connection.execute(sql, params)
    names = [d[0] for d in cursor.description]
    found = []
    for values in cursor.fetchall():
        row = dict(zip(names, values))
        for name in names:
            if name.endswith("_at"):
                row[name] = stored_time(row[name])
        found.append(SimpleNamespace(**row))
    return found
