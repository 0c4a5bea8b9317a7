"""Activation functions by name, for the ``activation`` option and bare activation layers.

``ACTIVATIONS`` maps a name to a zero-argument factory returning a fresh ``nn.Module``.
Softmax normalises over axis 1 of the batched tensor: the features of an ``[N, F]``
output and the channels of an ``[N, C, ...]`` output. That is the axis
``F.cross_entropy`` treats as classes, so folding a final softmax into the loss
(see ``modelyard.nn.builder``) changes nothing but numerical stability.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator
from torch import nn

from modelyard.errors import SpecError
from modelyard.registry import Registry, closest, normalize_name

__all__ = [
    "ACTIVATIONS",
    "SOFTMAX_DIM",
    "ActivationName",
    "canonical_activation",
    "make_activation",
]

# Axis of the batched tensor that softmax normalises (the class axis of F.cross_entropy).
SOFTMAX_DIM = 1
# Keras's and PyTorch's default negative slope for leaky ReLU.
DEFAULT_LEAKY_SLOPE = 0.01

ACTIVATIONS: Registry[Callable[[], nn.Module]] = Registry("activation")

ACTIVATIONS.add("linear", nn.Identity, "none", "identity")
ACTIVATIONS.add("sigmoid", nn.Sigmoid, "logistic")
ACTIVATIONS.add("tanh", nn.Tanh)
ACTIVATIONS.add("relu", nn.ReLU)
ACTIVATIONS.add("leaky_relu", lambda: nn.LeakyReLU(DEFAULT_LEAKY_SLOPE), "leakyrelu", "lrelu")
ACTIVATIONS.add("gelu", nn.GELU)
ACTIVATIONS.add("elu", nn.ELU)
ACTIVATIONS.add("selu", nn.SELU)
ACTIVATIONS.add("silu", nn.SiLU, "swish")
ACTIVATIONS.add("softplus", nn.Softplus)
ACTIVATIONS.add("softmax", lambda: nn.Softmax(dim=SOFTMAX_DIM))


def canonical_activation(value: Any) -> str | None:
    """The canonical activation name for an option value; None means no activation.

    Raises ``ValueError`` (so pydantic reports it under the option's full field path)
    with the valid names and the closest one.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected an activation name such as relu, received {value!r} ({type(value).__name__})")
    try:
        return ACTIVATIONS.canonical(value)
    except SpecError:
        hint = closest(normalize_name(value), ACTIVATIONS.all_names())
        msg = f"expected one of {', '.join(ACTIVATIONS.names())}, received {value!r}"
        if hint:
            msg += f"; did you mean {ACTIVATIONS.canonical(hint)!r}?"
        raise ValueError(msg) from None


# An ``activation`` option: validated and stored by its canonical name.
ActivationName = Annotated[str | None, BeforeValidator(canonical_activation)]


def make_activation(name: str | None) -> nn.Module | None:
    """A fresh module for ``name``, or None for no activation (None / linear)."""
    if name is None:
        return None
    canonical = ACTIVATIONS.canonical(name)
    if canonical == "linear":
        return None
    return ACTIVATIONS.get(canonical)()
