"""Parameter counts and a per-layer summary table of a built ``Network``."""

from __future__ import annotations

from typing import Any

from torch import nn

from modelyard.nn.network import Network

__all__ = ["parameter_count", "describe"]


def parameter_count(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def describe(network: Network) -> list[dict[str, Any]]:
    """One row per spec layer: index, name, type, field, output_shape, params."""
    rows = []
    for record, module in zip(network.records, network.layers):
        rows.append(
            {
                "index": record.index,
                "name": record.name,
                "type": record.type,
                "field": record.field,
                "output_shape": list(record.output_shape),
                "params": parameter_count(module),
            }
        )
    return rows
