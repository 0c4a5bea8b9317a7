"""Data: sources → splits → fitted preprocessing → tensors (``prepare``).

``prepare(spec.data, task=..., seed=...)`` returns a ``Prepared`` with train/val/test
``Split`` tensors and the fitted ``Pipeline`` that is saved with the model.
"""

from __future__ import annotations

from modelyard.data.pipeline import Pipeline
from modelyard.data.prepare import Prepared, Split, prepare, transformed_split
from modelyard.data.preprocess import PREPROCESSORS
from modelyard.data.sources import SOURCES, RawData, load_source

__all__ = [
    "prepare",
    "Prepared",
    "Split",
    "Pipeline",
    "RawData",
    "SOURCES",
    "PREPROCESSORS",
    "load_source",
    "transformed_split",
]
