"""Shared pieces of the control-plane job tests: tiny specs and a controllable clock."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from modelyard.server.jobs import store as jobs_module

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

# 400 rows, batch 4: 100 steps an epoch, a fraction of a second on one core.
TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 0,
    "data": {"source": "linear", "n": 400, "features": 4, "outputs": 1, "noise": 0.1},
    "model": {"input": [4], "layers": [{"dense": 8, "activation": "relu"}, {"dense": 1}]},
    "train": {"loss": "mse", "optimizer": "sgd", "lr": 0.01, "batch_size": 4, "epochs": 3},
}


def tiny_spec(**train: Any) -> dict[str, Any]:
    spec = copy.deepcopy(TINY)
    spec["train"].update(train)
    return spec


def resolved(spec: dict[str, Any]) -> dict[str, Any]:
    from modelyard.spec import load_spec

    return load_spec(spec).to_dict()


class Clock:
    """Replaces the job table's clock; ``advance`` ages every lease."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(jobs_module, "clock", c)
    return c
