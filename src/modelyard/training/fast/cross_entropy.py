"""Plain cross-entropy's value and gradient without the autograd tape: a training fast path.

``DenseStep`` computes a dense stack's backward itself; only the loss would still go through
autograd. For plain cross-entropy on class indices (no label smoothing) that last bit of tape is
four aten kernels, called here directly. It needs nothing but those kernels (``GATE``: the torch
versions they were tested with) and is handed to ``DenseStep`` as a ``ValueAndGrad`` when the
spec's loss is plain cross-entropy; with ``MODELYARD_FAST_PATHS=0`` the loss runs through autograd.
"""

from __future__ import annotations

from typing import Protocol

import torch

from modelyard.components import ComponentSpec
from modelyard.fast_paths import Gate
from modelyard.training.losses import LOSSES, class_indices

__all__ = ["GATE", "ValueAndGrad", "cross_entropy_value_and_grad", "value_and_grad_for"]

GATE = Gate("cross_entropy_grad", "torch", "2.4", "2.14")


class ValueAndGrad(Protocol):
    """``(outputs, targets) -> (batch mean loss, d loss / d outputs)``, or None to use autograd for this batch."""

    def __call__(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None: ...


def value_and_grad_for(loss: ComponentSpec) -> ValueAndGrad | None:
    """The tape-free value-and-gradient of the spec's ``loss`` when it has one and ``GATE`` is open."""
    if loss.type != "cross_entropy" or LOSSES.options_of(loss).label_smoothing != 0.0:  # type: ignore[attr-defined]
        return None
    return cross_entropy_value_and_grad if GATE.open() else None


def cross_entropy_value_and_grad(
    output: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(loss, d loss / d output) for class-index targets, without the autograd tape; None otherwise.

    The kernels are the ones autograd runs for ``F.cross_entropy`` (``_log_softmax`` and
    ``nll_loss_forward``, then ``nll_loss_backward`` and ``_log_softmax_backward_data``), so
    the value and the gradient are bitwise those of ``loss`` + ``torch.autograd.grad`` (no graph,
    no engine; what it saves: docs/performance.md). Anything else (one-hot or
    probability rows, shapes ``loss`` would reject with its message) returns None, and the
    caller goes through ``loss`` and autograd.
    """
    if target.is_floating_point() or not output.is_floating_point():
        return None
    target = class_indices(output, target)
    if target is None:
        return None
    aten = torch.ops.aten
    mean, ignore = 1, -100  # torch's Reduction.MEAN and default ignore_index, as F.cross_entropy passes them
    log_probs = aten._log_softmax(output, 1, False)
    value, total_weight = aten.nll_loss_forward(log_probs, target, None, mean, ignore)
    grad_log_probs = aten.nll_loss_backward(torch.ones_like(value), log_probs, target, None, mean, ignore, total_weight)
    return value, aten._log_softmax_backward_data(grad_log_probs, log_probs, 1, output.dtype)
