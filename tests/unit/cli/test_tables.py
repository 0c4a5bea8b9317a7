"""Tables printed to a pipe or a narrow terminal keep every name and id whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_cli
from tests.support.serving import register


@pytest.mark.parametrize("columns", ["40", "80"])
def test_model_tables_never_truncate_names(home: Path, monkeypatch: pytest.MonkeyPatch, columns: str) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    long_name = "a-model-name-much-longer-than-a-narrow-terminal-allows"
    ref = register("clf", home, as_name=long_name)
    out = run_cli("--home", str(home), "models").out
    assert ref in out and "…" not in out
    shown = run_cli("--home", str(home), "models", "show", ref).out
    assert ref in shown and "…" not in shown
