"""Shared fixtures: every test gets its own throwaway store and data cache."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "modelyard-home"
    monkeypatch.setenv("MODELYARD_HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MODELYARD_DATA", raising=False)
    return home


@pytest.fixture
def home(_isolated_home: Path) -> Path:
    return _isolated_home


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio, what uvicorn serves with (trio may be installed by selenium)."""
    return "asyncio"
