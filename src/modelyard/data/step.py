"""The preprocessing-step protocol and its registry.

A step is fitted once, on the training split only, and keeps its fitted state as plain
JSON (lists of floats) so that a registered model applies exactly the same transform at
prediction time. Steps work on whole numpy batches ``[N, *sample_shape]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from modelyard.components import ComponentRegistry

__all__ = ["PREPROCESSORS", "Step", "FitContext", "Augment"]

#: Registry of preprocessing steps; target ``(opts) -> Step``.
PREPROCESSORS = ComponentRegistry("preprocessing step")

#: ``augment(batch, generator) -> batch`` on torch tensors ``[N, C, H, W]``.
Augment = Callable[[Any, Any], Any]


@dataclass(frozen=True)
class FitContext:
    """What a step may know about the data besides the arrays it is fitted on."""

    task: str = "classification"
    kind: str = "tabular"
    num_classes: int | None = None
    field: str = "data.preprocess"


class Step:
    """Base of every preprocessing step: identity on x and y, no state."""

    #: True when integer token ids pass through the step unchanged (reshape, one_hot).
    keeps_ids: bool = False
    #: True when the step's output is integer token ids (tokenize).
    makes_ids: bool = False

    def __init__(self, opts: BaseModel) -> None:
        self.opts = opts

    def fit(self, x: np.ndarray, y: np.ndarray | None, ctx: FitContext) -> None:
        """Learn the state from the (already preprocessed by earlier steps) training split."""

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample shape after this step, for samples of ``shape`` before it."""
        return shape

    def transform_x(self, x: np.ndarray) -> np.ndarray:
        return x

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        return y

    def state_dict(self) -> dict[str, Any]:
        """Fitted state as JSON-able data (lists, floats, ints)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore the fitted state written by ``state_dict``."""

    def fingerprint(self) -> Any:
        """What identifies this fit: two fits with equal fingerprints transform alike.

        The whole fitted state by default, which suits deterministic fits (the same data give
        the same state). A step whose fit is not deterministic (a trained tokenizer) returns a
        digest of its settings and training data instead, so that a re-fit on the same data is
        recognised as such and the stored fit is used in its place (``prepare(stored=...)``).
        """
        return self.state_dict()

    def same_fit(self, stored: Step) -> bool:
        """True when this fresh fit and ``stored`` (restored from a saved state) fitted the same data alike."""
        return type(self) is type(stored) and self.fingerprint() == stored.fingerprint()

    def check_input_shape(self, shape: tuple[int, ...], ctx: FitContext) -> None:
        """Called with the final per-sample shape (after all steps) once fitting is done."""

    def augmenter(self) -> Augment | None:
        """A train-time batch augmentation, for steps that are one."""
        return None
