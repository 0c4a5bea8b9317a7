"""The layer registry: ``LAYERS`` maps layer names to ``(opts, in_shape, field) ->
(nn.Module, out_shape)`` builders. Importing this package registers every layer."""

from __future__ import annotations

from modelyard.nn.layers import activation, conv, dense, dropout, norm, pooling, shape  # noqa: F401  (registration)
from modelyard.nn.layers._common import LAYERS

__all__ = ["LAYERS"]
