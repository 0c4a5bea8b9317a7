"""PostgreSQL for the test suite (``pytest --db postgresql``): one server per session, a fresh database per test.

The server is ``MODELYARD_TEST_DATABASE_URL`` when set (CI starts one with ``scripts/postgres``),
else one started here with the same script in a temporary folder and stopped at the end.
Each test gets a database of its own (``CREATE DATABASE``: ~50 ms without fsync), dropped after it,
so tests stay as independent as with their own SQLite file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, make_url, text

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "postgres"
URL_VAR = "MODELYARD_TEST_DATABASE_URL"


@dataclass
class PostgresServer:
    url: URL  # the server's maintenance database
    folder: Path | None = None  # set when this session started the server (stopped and removed at the end)
    _admin: Engine = field(init=False)

    def __post_init__(self) -> None:
        self._admin = create_engine(self.url, isolation_level="AUTOCOMMIT")

    def create(self) -> URL:
        """A new empty database on the server."""
        name = f"modelyard_test_{uuid.uuid4().hex[:12]}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return self.url.set(database=name)

    def drop(self, url: URL) -> None:
        # FORCE: a server or worker process a test left running must not keep the database alive.
        with self._admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))

    def stop(self) -> None:
        self._admin.dispose()
        if self.folder is not None:
            subprocess.run([str(SCRIPT), "stop", str(self.folder)], check=True)
            shutil.rmtree(self.folder, ignore_errors=True)


def start() -> PostgresServer:
    """The session's server: ``MODELYARD_TEST_DATABASE_URL``, or a new one from ``scripts/postgres``."""
    given = os.environ.get(URL_VAR, "").strip()
    if given:
        return PostgresServer(make_url(given).set(drivername="postgresql+psycopg"))
    # Not under pytest's tmp_path: as root the server runs as the postgres user, who must reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="modelyard-pg-"))
    out = subprocess.run([str(SCRIPT), "start", str(folder)], check=True, capture_output=True, text=True).stdout
    return PostgresServer(make_url(out.strip().splitlines()[-1]), folder=folder)


def as_env(url: URL) -> str:
    """``url`` as MODELYARD_DATABASE_URL's value (with its password: the test server has none)."""
    return url.render_as_string(hide_password=False)


def execute(home: Path, *statements: str, **params: object) -> list[tuple]:
    """Run SQL on the store's database at ``home`` behind the store's back (an old release, an operator),
    on either back end; the rows of the last statement if it returns any. Cached engines are closed
    before and after, as another process's change would be seen."""
    from modelyard.store import db as store_db

    store_db.close_all()
    rows: list[tuple] = []
    try:
        with store_db.database(home).engine.begin() as conn:
            for statement in statements:
                result = conn.execute(text(statement), params)
                rows = [tuple(r) for r in result] if result.returns_rows else []
    finally:
        store_db.close_all()
    return rows
