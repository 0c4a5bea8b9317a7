"""Layers that only rearrange values: flatten and reshape."""

from __future__ import annotations

import math

import torch
from torch import nn

from modelyard._validation import ReshapeOptions
from modelyard.components import NoOptions
from modelyard.errors import ShapeError
from modelyard.nn.layers._common import LAYERS, Shape, fmt_shape

__all__ = ["ReshapeOptions", "Reshape"]


class Reshape(nn.Module):
    """``x.reshape(batch, *shape)``; the batch axis is kept."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={list(self.shape)}"


@LAYERS.component("flatten")
def flatten(opts: NoOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Everything but the batch axis into one axis: ``[C, H, W]`` → ``[C·H·W]``."""
    return nn.Flatten(start_dim=1), (math.prod(in_shape),)


@LAYERS.component("reshape", options=ReshapeOptions, primary="shape")
def reshape(opts: ReshapeOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Any shape with the same number of elements; one size may be -1 (inferred)."""
    total = math.prod(in_shape)
    known = math.prod(v for v in opts.shape if v != -1)
    if -1 in opts.shape:
        ok = total % known == 0
        out = tuple(total // known if v == -1 else v for v in opts.shape)
    else:
        ok = total == known
        out = tuple(opts.shape)
    if not ok:
        raise ShapeError(
            f"Invalid value for `{field}.shape`: expected a shape with {total} elements to match the input shape "
            f"{fmt_shape(in_shape)}, received {fmt_shape(opts.shape)} ({known} elements"
            f"{' times a whole number' if -1 in opts.shape else ''})",
            field=f"{field}.shape",
        )
    return Reshape(out), out
