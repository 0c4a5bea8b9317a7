"""Multi-head self-attention over a sequence: ``[T, D]`` → ``[T, D]``.

Separate query/key/value/output projections (``nn.Linear``, the layout of BERT-style
checkpoints, so a pretrained encoder's weights map one to one and int8 / LoRA see plain
linear layers) around ``F.scaled_dot_product_attention``, which picks torch's fused kernels.
Padded keys get no attention weight; padded queries still produce (ignored) outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from modelyard._validation import StrictModel
from modelyard.errors import ShapeError
from modelyard.nn.layers._common import LAYERS, PositiveInt, Shape, fmt_shape, require_rank
from modelyard.nn.masking import MaskedLayer

__all__ = ["AttentionOptions", "SelfAttention", "check_heads", "attention_mask"]


class AttentionOptions(StrictModel):
    heads: PositiveInt
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # on the attention weights, while training
    bias: bool = True


def attention_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """``[N, T]`` token mask → ``[N, 1, 1, T]`` key mask for SDPA (True: attend).

    A sequence of pads only attends to all of them, rather than to nothing (a softmax over
    no keys is NaN, and NaN would leak into the batch's gradients)."""
    if mask is None:
        return None
    mask = mask | ~mask.any(dim=1, keepdim=True)
    return mask[:, None, None, :]


class SelfAttention(MaskedLayer):
    """``output(softmax(q·kᵀ / √d_head) · v)`` per head, heads concatenated."""

    def __init__(self, dim: int, heads: int, *, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(dim, dim, bias=bias)
        self.key = nn.Linear(dim, dim, bias=bias)
        self.value = nn.Linear(dim, dim, bias=bias)
        self.output = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        n, t, d = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:  # [N, T, D] → [N, heads, T, D / heads]
            return y.view(n, t, self.heads, d // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.query(x)),
            split(self.key(x)),
            split(self.value(x)),
            attn_mask=attention_mask(mask),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.output(out.transpose(1, 2).reshape(n, t, d))

    def extra_repr(self) -> str:
        return f"heads={self.heads}, dropout={self.dropout}"


def check_heads(in_shape: Shape, heads: int, field: str, layer: str) -> None:
    """A ``[T, D]`` input whose D splits evenly into ``heads``; else a one-line ShapeError."""
    require_rank(in_shape, (2,), field, layer, "a sequence [T, features] input", "put it after an embedding")
    if in_shape[1] % heads:
        raise ShapeError(
            f"Invalid input for `{field}` ({layer}): expected a feature size divisible by heads ({heads}), "
            f"received shape {fmt_shape(in_shape)}; change heads or the embedding dim",
            field=field,
        )


@LAYERS.component(
    "attention",
    "self_attention",
    "multi_head_attention",
    "multihead_attention",
    "multiheadattention",
    "mha",
    options=AttentionOptions,
    primary="heads",
)
def attention(opts: AttentionOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Multi-head self-attention: ``[T, D]`` → ``[T, D]``, padded tokens masked out."""
    check_heads(in_shape, opts.heads, field, "attention")
    return SelfAttention(in_shape[1], opts.heads, dropout=opts.dropout, bias=opts.bias), in_shape
