"""modelyard: create, train, evaluate, register and use neural-network models from one spec.

    import modelyard
    result = modelyard.train("examples/fashion_mlp.yaml")
    model = modelyard.load(result.model_ref)
    probabilities = model.predict(images)

Heavy modules (torch, the store) load on first use, so ``import modelyard`` stays cheap.
"""

import typing

from modelyard._lazy import lazy_attributes as _lazy_attributes
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
    "tune",
    "TuneResult",
    "ModelyardError",
    "SpecError",
    "ShapeError",
    "DataError",
    "InputError",
    "NotFoundError",
    "StoreError",
    "TrainingError",
]

__getattr__, __dir__ = _lazy_attributes(
    globals(),
    {
        "Spec": "modelyard.spec",
        "load_spec": "modelyard.spec",
        "train": "modelyard.workflow",
        "resume": "modelyard.workflow",
        "TrainResult": "modelyard.workflow",
        "load": "modelyard.predict",
        "Predictor": "modelyard.predict",
        "evaluate": "modelyard.evaluation:evaluate_model",
        # The defining modules, not the packages: ``modelyard.compression.export`` is also a
        # submodule, which replaces the package's attribute of that name once imported.
        "serve": "modelyard.serving",
        "explain": "modelyard.explaining.api",
        "compress": "modelyard.compression.api",
        "export": "modelyard.compression.export",
        "tune": "modelyard.tuning.api",
        "TuneResult": "modelyard.tuning.api",
    },
)

if typing.TYPE_CHECKING:  # pragma: no cover
    from modelyard.compression import compress, export
    from modelyard.evaluation import evaluate_model as evaluate
    from modelyard.predict import Predictor, load
    from modelyard.serving import serve
    from modelyard.spec import Spec, load_spec
    from modelyard.tuning.api import TuneResult, tune
    from modelyard.workflow import TrainResult, resume, train
