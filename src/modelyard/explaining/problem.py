"""``Problem``: what one explanation request asks, checked and ready for any method.

It holds the raw inputs, the same inputs after the model's stored preprocessing (the
model-input features every method attributes to), the model's outputs and the output
index explained for each instance. The explained quantity is what ``predict`` returns:
the probability of the target class for classifiers, the target output for regression.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from modelyard.errors import InputError, RequestTimeoutError, SpecError
from modelyard.predict import Predictor

__all__ = ["Problem", "resolve_targets", "check_deadline"]

_CHUNK = 8192  # rows per forward pass when a method evaluates many perturbed inputs


@dataclass
class Problem:
    predictor: Predictor
    raw: np.ndarray  # (N, *raw_input_shape) float32, as the caller gave them
    features: torch.Tensor  # (N, *input_shape) model inputs on the model's device
    outputs: np.ndarray  # (N, K) float64 model outputs (probabilities for classifiers)
    targets: np.ndarray  # (N,) int64 output index explained per instance
    # time.monotonic() past which every further model evaluation raises RequestTimeoutError:
    # a method's work stops at its next forward pass instead of running on after the answer is gone.
    deadline: float | None = None

    @classmethod
    def build(
        cls, predictor: Predictor, inputs: Any, target: int | str | None, *, deadline: float | None = None
    ) -> Problem:
        features = predictor.preprocess(inputs)  # InputError naming the expected shape
        raw = np.asarray(inputs, dtype=np.float32).reshape(len(features), *predictor.input_shape)
        problem = cls(predictor, raw, features, np.zeros((0, 0)), np.zeros(0, dtype=np.int64), deadline)
        problem.outputs = problem.evaluate(problem.flat_features())
        problem.targets = resolve_targets(target, problem.outputs, predictor)
        return problem

    # -- shapes ------------------------------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.predictor.network.input_shape)

    @property
    def n_features(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def integer_inputs(self) -> bool:
        return self.predictor.network.input_dtype == torch.int64

    def flat_features(self) -> np.ndarray:
        return self.features.detach().cpu().numpy().reshape(len(self.features), -1).astype(np.float64)

    def target_outputs(self) -> np.ndarray:
        """(N,) the explained output of each instance."""
        return self.outputs[np.arange(len(self.outputs)), self.targets]

    # -- the model as the methods see it -----------------------------------------------------
    def check_deadline(self) -> None:
        check_deadline(self.deadline)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Differentiable ``(n, *input_shape)`` → ``(n, K)`` outputs (for Captum)."""
        self.check_deadline()
        network = self.predictor.network
        return network.probabilities(network(z)).reshape(len(z), -1)

    def evaluate(self, rows: np.ndarray) -> np.ndarray:
        """``(n, F)`` model-input rows → ``(n, K)`` float64 outputs, no gradients, in chunks."""
        network = self.predictor.network
        device = self.predictor.device
        outs = []
        with torch.inference_mode():
            for start in range(0, len(rows), _CHUNK):
                self.check_deadline()
                z = torch.as_tensor(np.asarray(rows[start : start + _CHUNK]), dtype=torch.float32)
                z = z.reshape(len(z), *self.input_shape)
                if self.integer_inputs:  # token ids: perturbed rows are rounded as Predictor.preprocess does
                    z = z.round().to(torch.int64)
                out = network.probabilities(network(z.to(device)))
                outs.append(out.reshape(len(z), -1).double().cpu().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, 0))

    def model_inputs(self, raw: Any, what: str) -> torch.Tensor:
        """Raw samples (a baseline, a background) through the model's stored preprocessing."""
        try:
            return self.predictor.preprocess(raw)
        except InputError as exc:  # it names the expected shape; say which argument was wrong
            raise SpecError(f"Invalid value for `{what}`: {exc.message}", field=what) from None


def check_deadline(deadline: float | None) -> None:
    """RequestTimeoutError once ``time.monotonic()`` is past ``deadline`` (None: no deadline)."""
    if deadline is not None and time.monotonic() > deadline:
        raise RequestTimeoutError(
            "Explanation stopped: it ran past the request timeout; use fewer steps or instances, "
            "or a faster method such as saliency"
        )


def resolve_targets(target: Any, outputs: np.ndarray, predictor: Predictor) -> np.ndarray:
    """One output index per instance: the predicted class, or ``target`` for all of them.

    ``target`` is an output index or, for classifiers, a class name. Models with one
    output (regression, or a single sigmoid probability) explain that output.
    """
    n, k = outputs.shape
    names = predictor.class_names if predictor.task == "classification" else None
    if target is None:
        if predictor.task == "classification" and k > 1:
            return outputs.argmax(axis=1).astype(np.int64)
        return np.zeros(n, dtype=np.int64)
    index: int | None = None
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        index = int(target)
    elif isinstance(target, str):
        text = target.strip()
        if names and len(names) == k and text in names:
            index = names.index(text)
        elif text.lstrip("-").isdigit():
            index = int(text)
    if index is None or not 0 <= index < k:
        choices = f"an output index 0..{k - 1}"
        if names and len(names) == k:
            shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
            choices += f" or a class name ({shown})"
        raise SpecError(f"Invalid value for `target`: expected {choices}, received {target!r}", field="target")
    return np.full(n, index, dtype=np.int64)
