"""Training: losses, optimizers, schedules, checkpoints and the fast training loop.

Names are imported on first use, so looking up one registry (as spec validation does)
does not pull in the whole loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_attributes as _lazy_attributes

__all__ = [
    "fit",
    "evaluate",
    "FitResult",
    "LOSSES",
    "OPTIMIZERS",
    "SCHEDULES",
    "save_checkpoint",
    "load_checkpoint",
    "Checkpoint",
]

_WHERE = {
    "fit": "modelyard.training.loop",
    "FitResult": "modelyard.training.loop",
    "evaluate": "modelyard.training.evaluation",
    "LOSSES": "modelyard.training.losses",
    "OPTIMIZERS": "modelyard.training.optimizers",
    "SCHEDULES": "modelyard.training.schedules",
    "save_checkpoint": "modelyard.training.checkpoint",
    "load_checkpoint": "modelyard.training.checkpoint",
    "Checkpoint": "modelyard.training.checkpoint",
}

if TYPE_CHECKING:
    from modelyard.training.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
    from modelyard.training.evaluation import evaluate
    from modelyard.training.loop import FitResult, fit
    from modelyard.training.losses import LOSSES
    from modelyard.training.optimizers import OPTIMIZERS
    from modelyard.training.schedules import SCHEDULES

__getattr__, __dir__ = _lazy_attributes(globals(), _WHERE)
