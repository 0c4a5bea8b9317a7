"""Dense (fully connected) and embedding layers."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from modelyard._validation import StrictModel
from modelyard.nn.activations import ActivationName, make_activation
from modelyard.nn.init import BiasInitOption, InitOption, initialize
from modelyard.nn.layers._common import LAYERS, Shape, with_activation

__all__ = ["DenseOptions", "EmbeddingOptions"]


class DenseOptions(StrictModel):
    units: int = Field(ge=1)
    activation: ActivationName = None
    init: InitOption = None
    bias_init: BiasInitOption = None
    use_bias: bool = True


class EmbeddingOptions(StrictModel):
    vocab: int = Field(ge=1, description="number of distinct token ids (ids are 0 .. vocab-1)")
    dim: int = Field(ge=1, description="size of each embedding vector")
    init: InitOption = None


@LAYERS.component("dense", "linear", "fc", "fully_connected", options=DenseOptions, primary="units")
def dense(opts: DenseOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """y = act(x·Wᵀ + b) over the last axis, like Keras Dense on inputs of any rank."""
    linear = nn.Linear(in_shape[-1], opts.units, bias=opts.use_bias)
    initialize(linear.weight, linear.bias, init=opts.init, bias_init=opts.bias_init, activation=opts.activation)
    module = with_activation("linear", linear, make_activation(opts.activation))
    return module, (*in_shape[:-1], opts.units)


@LAYERS.component("embedding", "embed", options=EmbeddingOptions, primary="vocab")
def embedding(opts: EmbeddingOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Integer token ids ``[T]`` → vectors ``[T, dim]``; must be the first layer (the builder checks)."""
    module = nn.Embedding(opts.vocab, opts.dim)
    initialize(module.weight, None, init=opts.init, bias_init=None)
    return module, (*in_shape, opts.dim)
