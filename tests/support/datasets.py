"""The workspace's real data sets (../shared/datasets beside the repository; see its README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Read at import: every test runs with MODELYARD_DATA unset (tests/conftest.py isolates them).
_DATA = os.environ.get("MODELYARD_DATA", "")


def shared_dataset(name: str) -> Path:
    """The folder of data set ``name``: on ``$MODELYARD_DATA`` or in ../shared/datasets; the test
    is skipped, saying so, on a machine that has neither (CI has ../shared)."""
    roots = [Path(p) for p in _DATA.split(os.pathsep) if p]
    roots.append(REPO.parent / "shared" / "datasets")
    for root in roots:
        if (root / name).is_dir():
            return root / name
    pytest.skip(f"data set {name} not found in {', '.join(map(str, roots))} (the workspace's ../shared/datasets)")
