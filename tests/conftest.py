"""Shared fixtures: every test gets its own throwaway store and data cache.

``pytest --db postgresql`` puts each test's store tables in a fresh PostgreSQL database
instead of the home's SQLite file (tests/support/databases.py); tests marked ``sqlite_only``
(they open the SQLite file themselves) are skipped there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="the store's database back end for every test (postgresql: a server per session, a database per test)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--db") == "sqlite":
        return
    skip = pytest.mark.skip(reason="reads or damages the SQLite file itself")
    for item in items:
        if item.get_closest_marker("sqlite_only"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[object | None]:
    if request.config.getoption("--db") != "postgresql":
        yield None
        return
    from tests.support import databases

    server = databases.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Path]:
    home = tmp_path / "modelyard-home"
    monkeypatch.setenv("MODELYARD_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MODELYARD_DATA", raising=False)
    monkeypatch.delenv("MODELYARD_ARTIFACTS_URL", raising=False)
    server = request.getfixturevalue("postgres_server")
    if server is None:
        monkeypatch.delenv("MODELYARD_DATABASE_URL", raising=False)
        yield home
        return
    from modelyard.store import db as store_db
    from tests.support.databases import as_env

    url = server.create()
    # Its own MonkeyPatch: a test's monkeypatch.undo() must not send its store back to SQLite.
    with pytest.MonkeyPatch.context() as database_env:
        database_env.setenv("MODELYARD_DATABASE_URL", as_env(url))
        yield home
    store_db.close_all()
    server.drop(url)


@pytest.fixture
def home(_isolated_home: Path) -> Path:
    return _isolated_home


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, what uvicorn serves with (trio may be installed by selenium)."""
    return "asyncio"
