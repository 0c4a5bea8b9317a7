"""Networks from specs: the layer registry and ``build_model``."""

from __future__ import annotations

from modelyard.nn.builder import build_model
from modelyard.nn.layers import LAYERS
from modelyard.nn.network import Network
from modelyard.nn.summary import describe, parameter_count

__all__ = ["build_model", "Network", "LAYERS", "parameter_count", "describe"]
