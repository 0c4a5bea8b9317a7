"""Dropout: zero a random fraction of values while training (identity in eval mode)."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from modelyard._validation import StrictModel
from modelyard.nn.layers._common import LAYERS, Shape

__all__ = ["DropoutOptions"]


class DropoutOptions(StrictModel):
    rate: float = Field(0.5, ge=0.0, lt=1.0)  # torch's default p


@LAYERS.component("dropout", options=DropoutOptions, primary="rate")
def dropout(opts: DropoutOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Zero each value with probability ``rate`` and scale the rest by 1 / (1 - rate)."""
    return nn.Dropout(opts.rate), in_shape
