"""Dense (fully connected) and embedding layers."""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
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
    # The id sequences are right-padded with: its vector stays zero, and the network masks it
    # out of attention, pooling and recurrent layers (modelyard.nn.masking).
    pad: int | None = Field(None, ge=0, description="padding token id (None: every id is a token)")

    @model_validator(mode="after")
    def _pad_in_vocab(self) -> EmbeddingOptions:
        if self.pad is not None and self.pad >= self.vocab:
            raise ValueError(f"expected pad to be a token id below vocab ({self.vocab}), received pad {self.pad}")
        return self


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
    module = nn.Embedding(opts.vocab, opts.dim, padding_idx=opts.pad)
    initialize(module.weight, None, init=opts.init, bias_init=None)
    if opts.pad is not None:
        with torch.no_grad():
            module.weight[opts.pad].zero_()  # an init option overwrote torch's zero pad row
    return module, (*in_shape, opts.dim)
