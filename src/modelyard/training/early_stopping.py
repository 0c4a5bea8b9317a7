"""Early stopping: stop when a logged metric stops improving, remember the best epoch.

The monitored value is any key of the per-epoch metrics (``val_loss``, ``val_accuracy``,
``loss``, ...). ``mode: auto`` maximises accuracy-like names and minimises the rest, the
same rule Keras's ``EarlyStopping`` uses. The state is plain numbers, saved as JSON in
checkpoints so a resumed run stops exactly where an uninterrupted one would.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from modelyard.spec import EarlyStoppingSpec

__all__ = ["EarlyStopping", "resolve_mode", "is_improvement"]

Mode = Literal["min", "max"]

# Name parts of metrics where larger is better (val_ prefix and averaging suffixes ignored).
_MAXIMIZED = ("accuracy", "acc", "precision", "recall", "f1", "r2", "auc")


def resolve_mode(monitor: str, mode: str = "auto") -> Mode:
    """``min`` or ``max`` for ``monitor``; ``auto`` picks max for accuracy-like names."""
    if mode in ("min", "max"):
        return mode  # type: ignore[return-value]
    name = monitor.removeprefix("val_")
    parts = set(name.split("_"))
    return "max" if any(p in parts for p in _MAXIMIZED) or name.endswith("accuracy") else "min"


def is_improvement(value: float, best: float | None, mode: Mode, min_delta: float = 0.0) -> bool:
    """True when ``value`` beats ``best`` by more than ``min_delta`` (NaN never improves)."""
    if value is None or math.isnan(value):
        return False
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping:
    """Counts epochs without improvement of ``spec.monitor``; ``should_stop`` after ``patience``."""

    def __init__(self, spec: EarlyStoppingSpec) -> None:
        self.spec = spec
        self.mode: Mode = resolve_mode(spec.monitor, spec.mode)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.should_stop = False

    @property
    def monitor(self) -> str:
        return self.spec.monitor

    def update(self, epoch: int, metrics: dict[str, Any]) -> bool:
        """Record one epoch's metrics; return True when it is the best epoch so far."""
        value = float(metrics[self.spec.monitor])
        if is_improvement(value, self.best, self.mode, self.spec.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return True
        self.wait += 1
        if self.wait >= self.spec.patience:
            self.should_stop = True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "should_stop": self.should_stop}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.wait = int(state["wait"])
        self.should_stop = bool(state["should_stop"])
