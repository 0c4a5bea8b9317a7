"""modelyard: create, train, evaluate, register and use neural-network models from one spec.

    import modelyard
    result = modelyard.train("examples/fashion_mlp.yaml")
    model = modelyard.load(result.model_ref)
    probabilities = model.predict(images)

Heavy modules (torch, the store) load on first use, so ``import modelyard`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from modelyard.errors import (
    DataError,
    InputError,
    ModelyardError,
    NotFoundError,
    ShapeError,
    SpecError,
    StoreError,
    TrainingError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Spec",
    "load_spec",
    "train",
    "resume",
    "TrainResult",
    "load",
    "Predictor",
    "evaluate",
    "serve",
    "explain",
    "compress",
    "export",
    "ModelyardError",
    "SpecError",
    "ShapeError",
    "DataError",
    "InputError",
    "NotFoundError",
    "StoreError",
    "TrainingError",
]

_LAZY = {
    "Spec": ("modelyard.spec", "Spec"),
    "load_spec": ("modelyard.spec", "load_spec"),
    "train": ("modelyard.workflow", "train"),
    "resume": ("modelyard.workflow", "resume"),
    "TrainResult": ("modelyard.workflow", "TrainResult"),
    "load": ("modelyard.predict", "load"),
    "Predictor": ("modelyard.predict", "Predictor"),
    "evaluate": ("modelyard.evaluation", "evaluate_model"),
    "serve": ("modelyard.serving", "serve"),
    "explain": ("modelyard.explaining", "explain"),
    "compress": ("modelyard.compression", "compress"),
    "export": ("modelyard.compression", "export"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modelyard' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from modelyard.compression import compress, export
    from modelyard.evaluation import evaluate_model as evaluate
    from modelyard.predict import Predictor, load
    from modelyard.serving import serve
    from modelyard.spec import Spec, load_spec
    from modelyard.workflow import TrainResult, resume, train
