"""Model compression and export: int8 quantization, pruning, distillation, ONNX.

``compress`` and ``export`` each register a new model version with its lineage.
``loading.restore_weights`` rebuilds compressed versions for ``Predictor.load``; the rest is
imported on first use, so loading a model does not import the training loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelyard._lazy import lazy_attributes as _lazy_attributes

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

__getattr__, __dir__ = _lazy_attributes(globals(), _WHERE)
