"""Helpers for the sequence-layer tests: networks from layer lists and right-padded token ids.

Holds no tests itself.
"""

from __future__ import annotations

import torch
from torch import nn

from modelyard.nn import Network, build_model
from modelyard.nn.layers.attention import SelfAttention
from modelyard.spec import ModelSpec

PAD = 0


def build(layers: list, input_shape: list[int], loss: str | None = None) -> Network:
    return build_model(ModelSpec.model_validate({"input": input_shape, "layers": layers}), loss=loss)


def padded_ids(lengths: list[int], total: int, vocab: int, *, seed: int = 0) -> torch.Tensor:
    """``[len(lengths), total]`` ids in 1..vocab-1, each row right-padded with PAD after its length."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (len(lengths), total), generator=gen)
    for row, length in enumerate(lengths):
        ids[row, length:] = PAD
    return ids


def mask_of(ids: torch.Tensor) -> torch.Tensor:
    return ids != PAD


def as_multihead(attention: SelfAttention) -> nn.MultiheadAttention:
    """torch's own multi-head attention holding the same weights (q, k, v packed into in_proj)."""
    dim, bias = attention.query.in_features, attention.query.bias is not None
    ref = nn.MultiheadAttention(dim, attention.heads, bias=bias, batch_first=True)
    parts = (attention.query, attention.key, attention.value)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([p.weight for p in parts]))
        ref.out_proj.weight.copy_(attention.output.weight)
        if bias:
            ref.in_proj_bias.copy_(torch.cat([p.bias for p in parts]))
            ref.out_proj.bias.copy_(attention.output.bias)
    return ref
