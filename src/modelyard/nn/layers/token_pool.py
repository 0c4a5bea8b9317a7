"""Pooling over tokens: a sequence ``[T, D]`` → one vector ``[D]``, padded tokens left out.

``mean`` averages the real tokens (sentence-transformers' mean pooling), ``max`` takes each
feature's largest value over them, ``cls`` the first token's vector (BERT's [CLS]; a
tokenizer puts it first, so it is never a pad), ``attention`` a learned softmax-weighted sum
(a ``Linear(D, 1)`` scores each token; Yang et al. 2016's attention pooling with one query).
A sequence of pads alone pools to zeros (mean, max) or to the mean of its positions (attention).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from modelyard._validation import StrictModel
from modelyard.nn.layers._common import LAYERS, Shape, require_rank
from modelyard.nn.masking import MaskedLayer

__all__ = ["TokenPoolOptions", "TokenPool"]


class TokenPoolOptions(StrictModel):
    mode: Literal["mean", "max", "cls", "attention"] = "mean"


class TokenPool(MaskedLayer):
    """``[N, T, D]`` (+ ``[N, T]`` mask) → ``[N, D]``."""

    keeps_tokens = False

    def __init__(self, mode: str, dim: int) -> None:
        super().__init__()
        self.mode = mode
        if mode == "attention":
            self.score = nn.Linear(dim, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.mode == "cls":
            return x[:, 0]
        if self.mode == "attention":
            scores = self.score(x).squeeze(-1)  # [N, T]
            if mask is not None:
                # finfo.min, not -inf: an all-pad row then softmaxes to uniform weights, not NaN.
                scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=1)
            return torch.einsum("nt,ntd->nd", weights.to(x.dtype), x)
        if mask is None:
            return x.mean(dim=1) if self.mode == "mean" else x.amax(dim=1)
        keep = mask.unsqueeze(-1)  # [N, T, 1]
        if self.mode == "mean":
            return (x * keep.to(x.dtype)).sum(dim=1) / keep.sum(dim=1).clamp_min(1).to(x.dtype)
        pooled = x.masked_fill(~keep, float("-inf")).amax(dim=1)
        return pooled.masked_fill(~keep.any(dim=1), 0.0)

    def extra_repr(self) -> str:
        return f"mode={self.mode}"


@LAYERS.component("token_pool", "sequence_pool", "pool_tokens", options=TokenPoolOptions, primary="mode")
def token_pool(opts: TokenPoolOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Pool a sequence over its tokens (mean, max, cls or attention): ``[T, D]`` → ``[D]``."""
    require_rank(
        in_shape,
        (2,),
        field,
        "token_pool",
        "a sequence [T, features] input",
        "put it after an embedding or a sequence layer",
    )
    return TokenPool(opts.mode, in_shape[1]), (in_shape[1],)
