"""Batch, layer and group normalisation."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from modelyard._validation import StrictModel
from modelyard.errors import ShapeError
from modelyard.nn.layers._common import LAYERS, Shape, require_rank

__all__ = ["BatchNormOptions", "LayerNormOptions", "GroupNormOptions"]


class BatchNormOptions(StrictModel):
    # torch's convention: the weight of the *new* batch statistic in the running average
    # (Keras's momentum=0.99 is torch's 0.01).
    momentum: float = Field(0.1, gt=0.0, le=1.0)
    eps: float = Field(1e-5, gt=0.0)


class LayerNormOptions(StrictModel):
    eps: float = Field(1e-5, gt=0.0)


class GroupNormOptions(StrictModel):
    groups: int = Field(ge=1)
    eps: float = Field(1e-5, gt=0.0)


_BATCHNORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm1d, 3: nn.BatchNorm2d, 4: nn.BatchNorm3d}


@LAYERS.component(
    "batchnorm",
    "batch_norm",
    "batchnormalization",
    "batch_normalization",
    "batchnorm1d",
    "batchnorm2d",
    "bn",
    options=BatchNormOptions,
)
def batchnorm(opts: BatchNormOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Normalise each feature [F] / channel [C, ...] over the batch (1d, 2d or 3d by rank)."""
    require_rank(in_shape, tuple(_BATCHNORM), field, "batchnorm", "an input [F], [C, L], [C, H, W] or [C, D, H, W]")
    return _BATCHNORM[len(in_shape)](in_shape[0], eps=opts.eps, momentum=opts.momentum), in_shape


@LAYERS.component(
    "layernorm", "layer_norm", "layernormalization", "layer_normalization", "ln", options=LayerNormOptions
)
def layernorm(opts: LayerNormOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Normalise each sample over its last axis (with a learned scale and shift)."""
    return nn.LayerNorm(in_shape[-1], eps=opts.eps), in_shape


@LAYERS.component("groupnorm", "group_norm", "group_normalization", "gn", options=GroupNormOptions, primary="groups")
def groupnorm(opts: GroupNormOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """Normalise each sample over groups of its channels [C, ...] (Wu & He 2018): per sample, so it is
    the batch norm replacement where samples must not mix (differentially private training)."""
    require_rank(in_shape, (1, 2, 3, 4), field, "groupnorm", "an input [C], [C, L], [C, H, W] or [C, D, H, W]")
    if in_shape[0] % opts.groups:
        raise ShapeError(
            f"Invalid value for `{field}.groups`: expected a divisor of the {in_shape[0]} channels, received {opts.groups}",
            field=f"{field}.groups",
        )
    return nn.GroupNorm(opts.groups, in_shape[0], eps=opts.eps), in_shape
