"""The preprocessing-step registry with every built-in step registered.

Steps: ``scale``, ``standardize``, ``normalize`` (scaling.py), ``reshape``, ``one_hot``
(shaping.py), ``tokenize`` (tokenize.py: text → token ids) and the train-time ``augment`` and ``audio_augment``
(augment.py, audio_augment.py). Each is fitted on the
training split only; ``Pipeline`` (pipeline.py) runs them in order and saves their state.
"""

from __future__ import annotations

# Importing the modules registers their steps in PREPROCESSORS.
from modelyard.data import audio_augment, augment, scaling, shaping, tokenize  # noqa: F401
from modelyard.data.step import PREPROCESSORS, FitContext, Step

__all__ = ["PREPROCESSORS", "Step", "FitContext"]
