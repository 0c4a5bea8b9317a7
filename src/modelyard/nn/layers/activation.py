"""Activations as layers: ``relu``, ``{activation: relu}``, ``{leaky_relu: 0.2}``, ``identity``.

Every name in ``modelyard.nn.activations.ACTIVATIONS`` is also a bare layer name, except
``linear`` (a dense layer here, as in PyTorch) whose layer is ``identity``.
"""

from __future__ import annotations

from pydantic import Field
from torch import nn

from modelyard._validation import StrictModel
from modelyard.components import NoOptions
from modelyard.nn.activations import ACTIVATIONS, DEFAULT_LEAKY_SLOPE, ActivationName, make_activation
from modelyard.nn.layers._common import LAYERS, Shape

__all__ = ["ActivationOptions", "LeakyReluOptions"]


class ActivationOptions(StrictModel):
    activation: ActivationName = None


class LeakyReluOptions(StrictModel):
    slope: float = Field(DEFAULT_LEAKY_SLOPE, ge=0.0, alias="negative_slope")


@LAYERS.component("activation", options=ActivationOptions, primary="activation")
def activation(opts: ActivationOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """The named activation, applied element-wise (softmax: over axis 1 of the batch)."""
    return make_activation(opts.activation) or nn.Identity(), in_shape


@LAYERS.component("identity")
def identity(opts: NoOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Pass the input through unchanged."""
    return nn.Identity(), in_shape


@LAYERS.component("leaky_relu", "leakyrelu", "lrelu", options=LeakyReluOptions, primary="slope")
def leaky_relu(opts: LeakyReluOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """max(x, slope·x); slope 0.01 by default."""
    return nn.LeakyReLU(opts.slope), in_shape


def _register_bare(name: str) -> None:
    def target(opts: NoOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
        return ACTIVATIONS.get(name)(), in_shape

    target.__doc__ = f"The {name} activation as a layer."
    aliases = [a for a in ACTIVATIONS.all_names() if a != name and ACTIVATIONS.canonical(a) == name]
    LAYERS.component(name, *aliases)(target)


for _name in ACTIVATIONS.names():
    if _name not in ("linear", "leaky_relu"):
        _register_bare(_name)
