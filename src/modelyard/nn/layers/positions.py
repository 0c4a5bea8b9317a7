"""Position embeddings: where each token is, added to its vector (``[T, D]`` → ``[T, D]``).

Attention and pooling see a set of vectors; without positions a transformer cannot tell
"a b" from "b a". ``learned`` is a trainable ``[max_length, D]`` table (BERT); ``sinusoidal``
the fixed table of Vaswani et al. 2017, section 3.5. A batch shorter than ``max_length``
(padded to its own longest sequence) takes the table's first rows.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import model_validator
from torch import nn

from modelyard._validation import StrictModel
from modelyard.errors import ShapeError
from modelyard.nn.init import InitOption, initialize
from modelyard.nn.layers._common import LAYERS, OptionalPositiveInt, Shape, fmt_shape, require_rank

__all__ = ["PositionOptions", "PositionEmbedding", "sinusoidal_table"]


class PositionOptions(StrictModel):
    kind: Literal["learned", "sinusoidal"] = "learned"
    max_length: OptionalPositiveInt = None  # None: the input's token count
    init: InitOption = None  # learned only; default N(0, 1) as torch's nn.Embedding

    @model_validator(mode="after")
    def _init_is_for_learned(self) -> PositionOptions:
        if self.init is not None and self.kind != "learned":
            raise ValueError(
                f"expected no init for kind 'sinusoidal' (a fixed table), received init {self.init.type!r}"
            )
        return self


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(p / 10000^(2i/dim)); ``[length, dim]``."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    rates = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim + dim % 2)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates)
    return table[:, :dim]


class PositionEmbedding(nn.Module):
    """``x + table[:T]`` for ``x`` of shape ``[N, T, D]``."""

    positionwise = True  # each position gets its own vector: the padding mask still holds after it

    def __init__(self, kind: str, max_length: int, dim: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "learned":
            self.weight = nn.Parameter(torch.empty(max_length, dim))
            nn.init.normal_(self.weight)
        else:
            # Rebuilt from the spec, so not stored with the weights.
            self.register_buffer("table", sinusoidal_table(max_length, dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = self.weight if self.kind == "learned" else self.table
        return x + table[: x.shape[1]]

    def extra_repr(self) -> str:
        table = self.weight if self.kind == "learned" else self.table
        return f"kind={self.kind}, max_length={table.shape[0]}, dim={table.shape[1]}"


@LAYERS.component(
    "position_embedding", "positional_embedding", "position", "positions", options=PositionOptions, primary="kind"
)
def position_embedding(opts: PositionOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Add a learned or sinusoidal position vector to each token: ``[T, D]`` → ``[T, D]``."""
    require_rank(
        in_shape, (2,), field, "position_embedding", "a sequence [T, features] input", "put it after an embedding"
    )
    length = opts.max_length if opts.max_length is not None else in_shape[0]
    if length < in_shape[0]:
        raise ShapeError(
            f"Invalid value for `{field}.max_length`: expected at least the input's {in_shape[0]} tokens "
            f"(input shape {fmt_shape(in_shape)}), received {length}",
            field=f"{field}.max_length",
        )
    module = PositionEmbedding(opts.kind, length, in_shape[1])
    if opts.kind == "learned" and opts.init is not None:
        initialize(module.weight, None, init=opts.init, bias_init=None)
    return module, in_shape
