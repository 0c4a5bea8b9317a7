"""The layer registry: ``LAYERS`` maps layer names to ``(opts, in_shape, field) ->
(nn.Module, out_shape)`` builders. Importing this package registers every layer."""

from __future__ import annotations

# Importing each layer file registers its layers.
from modelyard.nn.layers import (  # noqa: F401
    activation,
    attention,
    audio,
    conv,
    dense,
    dropout,
    norm,
    pooling,
    positions,
    pretrained,
    recurrent,
    shape,
    token_pool,
    transformer,
)
from modelyard.nn.layers._common import LAYERS

__all__ = ["LAYERS"]
