"""Shared pieces of the tuning tests: a digits spec that trains in a fraction of a second per trial."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.compression import digits_spec

SEARCH = ["train.lr=loguniform(1e-3,3e-2)", "model.layers.0.units=choice(8,32)"]


def tiny_spec(epochs: int = 4) -> dict[str, Any]:
    spec = digits_spec(epochs=epochs, hidden=(16,))
    return {**spec, "name": "digits-tune", "train": {**spec["train"], "batch_size": 128}}


def optuna_study(home: Path, name: str) -> Any:
    """The study read by Optuna itself from the store's database file (not through modelyard).

    Without Optuna's compatibility check: ``alembic_version`` holds the store's revision (tuning/storage.py).
    """
    import optuna

    storage = optuna.storages.RDBStorage(f"sqlite:///{home / 'modelyard.db'}", skip_compatibility_check=True)
    return optuna.load_study(study_name=name, storage=storage)
