"""The transformer encoder: ``blocks`` encoder blocks in a row, ``[T, D]`` → ``[T, D]``.

One block is what ``nn.TransformerEncoderLayer`` computes (the reference in the tests):
self-attention and a two-layer MLP, each wrapped in dropout, a residual connection and a
layer norm, either after the residual (``norm: post``, the original transformer and BERT)
or before the sublayer (``norm: pre``, which trains deep stacks more stably; follow a pre-norm
stack with a ``layernorm`` layer, as GPT-2 and ViT do). It is built here from ``nn.Linear``,
``nn.LayerNorm`` and ``SelfAttention`` rather than taken from torch, so that each projection
is a plain linear layer (pretrained BERT-style weights load one to one; int8 and LoRA see it).

``gradient_checkpointing: true`` keeps only each block's input during a training forward and
recomputes the block in the backward pass (``torch.utils.checkpoint``, non-reentrant, with the
dropout RNG state replayed): the same gradients for about one extra forward, and activation
memory that no longer grows with the blocks' inner tensors (attention maps, the MLP's hidden).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.utils.checkpoint
from pydantic import Field
from torch import nn

from modelyard._validation import StrictModel
from modelyard.nn.activations import ActivationName, make_activation
from modelyard.nn.layers._common import LAYERS, OptionalPositiveInt, PositiveInt, Shape
from modelyard.nn.layers.attention import SelfAttention, check_heads
from modelyard.nn.masking import MaskedLayer

__all__ = ["TransformerOptions", "EncoderBlock", "TransformerEncoder"]


class TransformerOptions(StrictModel):
    blocks: PositiveInt = 1
    heads: PositiveInt
    mlp: OptionalPositiveInt = None  # hidden size of the MLP; None: 4 × the input's features
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # torch's and BERT's default
    attention_dropout: float | None = Field(None, ge=0.0, lt=1.0)  # None: the same as dropout
    norm: Literal["post", "pre"] = "post"  # nn.TransformerEncoderLayer's default (norm_first=False)
    activation: ActivationName = "gelu"
    eps: float = Field(1e-5, gt=0.0)  # of the layer norms (BERT: 1e-12)
    bias: bool = True
    gradient_checkpointing: bool = False  # recompute each block in the backward pass instead of keeping its tensors


class EncoderBlock(nn.Module):
    """One block; ``forward(x, mask)`` with ``x`` ``[N, T, D]`` and ``mask`` ``[N, T]`` or None.

    ``activation_dropout``: dropout also on the MLP's hidden activations, as
    ``nn.TransformerEncoderLayer``; BERT's layout (a ``pretrained`` encoder) has none there.
    """

    def __init__(self, dim: int, opts: TransformerOptions, *, activation_dropout: bool = True) -> None:
        super().__init__()
        self.activation_dropout = activation_dropout
        attention_dropout = opts.dropout if opts.attention_dropout is None else opts.attention_dropout
        self.pre_norm = opts.norm == "pre"
        self.attention = SelfAttention(dim, opts.heads, dropout=attention_dropout, bias=opts.bias)
        self.attention_norm = nn.LayerNorm(dim, eps=opts.eps, bias=opts.bias)
        hidden = opts.mlp if opts.mlp is not None else 4 * dim
        self.mlp_in = nn.Linear(dim, hidden, bias=opts.bias)
        self.activation = make_activation(opts.activation) or nn.Identity()
        self.mlp_out = nn.Linear(hidden, dim, bias=opts.bias)
        self.mlp_norm = nn.LayerNorm(dim, eps=opts.eps, bias=opts.bias)
        self.dropout = nn.Dropout(opts.dropout)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.activation(self.mlp_in(x))
        if self.activation_dropout:
            hidden = self.dropout(hidden)
        return self.dropout(self.mlp_out(hidden))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.pre_norm:
            x = x + self.dropout(self.attention(self.attention_norm(x), mask))
            return x + self._mlp(self.mlp_norm(x))
        x = self.attention_norm(x + self.dropout(self.attention(x, mask)))
        return self.mlp_norm(x + self._mlp(x))


class TransformerEncoder(MaskedLayer):
    """``blocks`` encoder blocks applied in order, the padding mask passed to each."""

    def __init__(self, dim: int, opts: TransformerOptions, *, activation_dropout: bool = True) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, opts, activation_dropout=activation_dropout) for _ in range(opts.blocks)
        )
        self.gradient_checkpointing = opts.gradient_checkpointing

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # Only where a backward pass will follow: in evaluation and prediction there is nothing to save.
        recompute = self.gradient_checkpointing and self.training and torch.is_grad_enabled()
        for block in self.blocks:
            # A frozen block on input that needs no gradient saves nothing: it runs plainly.
            if recompute and (x.requires_grad or any(p.requires_grad for p in block.parameters())):
                x = torch.utils.checkpoint.checkpoint(block, x, mask, use_reentrant=False)
            else:
                x = block(x, mask)
        return x


@LAYERS.component(
    "transformer",
    "transformer_encoder",
    "transformer_encoder_layer",
    "transformerencoderlayer",
    options=TransformerOptions,
    primary="blocks",
)
def transformer(opts: TransformerOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """``blocks`` transformer encoder blocks (attention + GELU MLP, pre/post-norm): ``[T, D]`` → ``[T, D]``."""
    check_heads(in_shape, opts.heads, field, "transformer")
    return TransformerEncoder(in_shape[1], opts), in_shape
