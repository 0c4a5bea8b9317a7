"""L1/L2 weight penalties and gradient clipping.

Penalties follow Keras's kernel regularizers: ``l1 · Σ|w| + l2 · Σw²`` over the weight
matrices and kernels of dense and conv layers (parameters with ndim > 1), never over
biases or normalisation scales, added to the loss that is differentiated.
``train.weight_decay`` is different: the optimizer applies it (decoupled in AdamW).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

__all__ = ["penalized_parameters", "weight_penalty", "clip_gradients"]


def penalized_parameters(network: nn.Module) -> list[torch.Tensor]:
    """The trainable weights L1/L2 apply to: dense weight matrices and conv kernels (ndim > 1)."""
    return [p for p in network.parameters() if p.requires_grad and p.ndim > 1]


def weight_penalty(weights: Sequence[torch.Tensor], *, l1: float = 0.0, l2: float = 0.0) -> torch.Tensor | None:
    """``l1 · Σ|w| + l2 · Σw²`` as a scalar tensor (no host sync), or None when both are 0."""
    if not weights or (l1 == 0.0 and l2 == 0.0):
        return None
    total: torch.Tensor | None = None
    if l1:
        term = l1 * torch.stack([w.abs().sum() for w in weights]).sum()
        total = term
    if l2:
        term = l2 * torch.stack([w.square().sum() for w in weights]).sum()
        total = term if total is None else total + term
    return total


def clip_gradients(
    parameters: Iterable[torch.Tensor], *, max_norm: float | None = None, max_value: float | None = None
) -> None:
    """Clip each gradient to [-max_value, max_value], then the total L2 norm to ``max_norm``.

    Both use torch's foreach kernels and return without reading values on the host, so a
    GPU never waits for them.
    """
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return
    if max_value is not None:
        torch.nn.utils.clip_grad_value_(params, max_value, foreach=True)
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
