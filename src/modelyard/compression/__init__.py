"""Model compression and export: int8 quantization, pruning, distillation, ONNX.

``compress`` and ``export`` each register a new model version with its lineage.
``loading.restore_weights`` rebuilds compressed versions for ``Predictor.load``; the rest is
imported on first use, so loading a model does not import the training loop.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["CompressResult", "ExportResult", "compress", "export"]

_WHERE = {
    "compress": "modelyard.compression.api",
    "CompressResult": "modelyard.compression.api",
    "export": "modelyard.compression.export",
    "ExportResult": "modelyard.compression.export",
}

if TYPE_CHECKING:
    from modelyard.compression.api import CompressResult, compress
    from modelyard.compression.export import ExportResult, export


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'modelyard.compression' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
