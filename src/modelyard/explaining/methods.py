"""The explanation methods by name, and the small types they share.

Each method is a function ``run(problem, settings) -> Attribution`` registered in
``METHODS`` with its aliases, so ``method="ig"`` and ``--method shap`` resolve the same way
as every other named thing in modelyard (a miss lists the methods and the closest one).
Methods work in the model's input space, flattened to ``(N, F)`` features: the space
where gradients exist and where the model's own preprocessing has already been applied.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from modelyard.registry import Registry

if TYPE_CHECKING:
    from modelyard.explaining.problem import Problem

__all__ = ["Method", "Settings", "Attribution", "METHODS", "get_method"]


@dataclass(frozen=True)
class Settings:
    """Method options; ``background()`` loads reference rows only when a method needs them."""

    steps: int
    seed: int
    baseline: np.ndarray | None  # raw sample (or None: all zeros), IG only
    background: Callable[[], np.ndarray]  # (n, F) model-input rows of the training split


@dataclass
class Attribution:
    """What a method found, per instance, in model-input space."""

    values: np.ndarray  # (N, F) float64: one contribution per model-input feature
    baseline_outputs: np.ndarray | None = None  # (N,) output the attributions are measured from
    convergence_delta: np.ndarray | None = None  # (N,) sum(values) - (output - baseline_output)
    per_instance: list[dict[str, Any]] | None = None  # method-specific numbers (LIME fit quality)
    details: dict[str, Any] = field(default_factory=dict)  # settings worth reporting (steps, background size)


@dataclass(frozen=True)
class Method:
    """An explanation method and what it needs from a model."""

    name: str
    run: Callable[[Problem, Settings], Attribution]
    summary: str
    gradients: bool = False  # needs float inputs it can differentiate through
    tabular_only: bool = False  # samples feature subsets: refused for image models (too many pixels)


#: Explanation methods: integrated_gradients, saliency (attributions.py); shap, lime (tabular.py).
METHODS: Registry[Method] = Registry("explanation method")
_MODULES = ("modelyard.explaining.attributions", "modelyard.explaining.tabular")


def register(method: Method, *aliases: str) -> Method:
    METHODS.add(method.name, method, *aliases)
    return method


def get_method(name: Any) -> Method:
    """The method called ``name`` (or an alias); SpecError naming the choices on a miss."""
    for module in _MODULES:  # they register on import; importing twice is free
        importlib.import_module(module)
    if not isinstance(name, str):
        from modelyard.errors import SpecError

        raise SpecError(
            f"Invalid value for `method`: expected one of {', '.join(METHODS.names())}, received {name!r}",
            field="method",
        )
    return METHODS.get(name, field="method")
