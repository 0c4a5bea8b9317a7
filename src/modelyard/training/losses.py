"""Loss functions by name: ``(opts) -> loss(output, target) -> scalar tensor``.

Every loss averages over the batch (``reduction="mean"``), so the training loop can turn
it into a per-sample mean over an epoch by weighting each batch with its size. ``reduction="none"``
gives the elementwise losses (differentially private training reads one loss per sample).

Classification losses take LOGITS: the network drops a final softmax/sigmoid when the
loss is ``cross_entropy`` or ``binary_cross_entropy`` (``Network.output_activation``
says which), because log-softmax/log-sigmoid of logits is the numerically stable form.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from pydantic import Field

from modelyard._validation import StrictModel
from modelyard.components import ComponentRegistry, NoOptions
from modelyard.errors import DataError

__all__ = ["LOSSES", "LossFn", "HuberOptions", "CrossEntropyOptions", "class_indices"]

LossFn = Callable[..., torch.Tensor]  # (output, target, reduction="mean") -> loss

#: Registry of losses; target ``(opts) -> LossFn``.
LOSSES = ComponentRegistry("loss")


class HuberOptions(StrictModel):
    delta: float = Field(1.0, gt=0.0)


class CrossEntropyOptions(StrictModel):
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def _like(target: torch.Tensor, output: torch.Tensor, loss: str) -> torch.Tensor:
    """``target`` as floats shaped like ``output``; [N] fits [N, 1] (one output per sample)."""
    if target.shape != output.shape:
        if target.numel() != output.numel() or target.shape[:1] != output.shape[:1]:
            raise DataError(
                f"Invalid targets for loss {loss!r}: expected shape {_shape(output)} like the network "
                f"output, received {_shape(target)}"
            )
        target = target.reshape(output.shape)
    return target if target.is_floating_point() else target.float()


@LOSSES.component("mse", "mean_squared_error")
def mse(opts: NoOptions) -> LossFn:
    """Mean squared error over every output element (regression)."""

    def loss(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.mse_loss(output, _like(target, output, "mse"), reduction=reduction)

    return loss


@LOSSES.component("mae", "l1", "mean_absolute_error")
def mae(opts: NoOptions) -> LossFn:
    """Mean absolute error over every output element; robust to outlying targets."""

    def loss(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.l1_loss(output, _like(target, output, "mae"), reduction=reduction)

    return loss


@LOSSES.component("huber", "smooth_l1", options=HuberOptions, primary="delta")
def huber(opts: HuberOptions) -> LossFn:
    """Huber loss: squared below ``delta``, linear above (torch's ``huber_loss``)."""
    delta = opts.delta

    def loss(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.huber_loss(output, _like(target, output, "huber"), delta=delta, reduction=reduction)

    return loss


@LOSSES.component(
    "cross_entropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "ce",
    options=CrossEntropyOptions,
    primary="label_smoothing",
)
def cross_entropy(opts: CrossEntropyOptions) -> LossFn:
    """Softmax cross-entropy on logits [N, C]; targets are class indices [N] or rows [N, C].

    Float rows are one-hot or probability targets (torch's class-probability form), so a
    one-hot target gives exactly the loss of its class index.
    """
    smoothing = opts.label_smoothing

    def loss(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        if target.is_floating_point():
            if target.shape != output.shape:
                raise DataError(
                    f"Invalid targets for loss 'cross_entropy': expected class indices [N] or one-hot rows "
                    f"{_shape(output)}, received floats of shape {_shape(target)}"
                )
            return F.cross_entropy(output, target, label_smoothing=smoothing, reduction=reduction)
        indices = class_indices(output, target)
        if indices is None:
            raise DataError(
                f"Invalid targets for loss 'cross_entropy': expected class indices of shape [{output.shape[0]}] "
                f"for logits {_shape(output)}, received {_shape(target)}"
            )
        return F.cross_entropy(output, indices, label_smoothing=smoothing, reduction=reduction)

    return loss


def class_indices(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
    """Integer targets as int64 class indices [N] for logits [N, C] ([N, 1] columns too), or None."""
    if target.ndim == 2 and target.shape[1] == 1:
        target = target.reshape(-1)
    if target.ndim != 1 or output.ndim != 2 or target.shape[0] != output.shape[0]:
        return None
    return target.long()


@LOSSES.component("binary_cross_entropy", "bce", "binary_crossentropy")
def binary_cross_entropy(opts: NoOptions) -> LossFn:
    """Sigmoid cross-entropy on logits; targets 0/1 (or probabilities) shaped like the output."""

    def loss(output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(
            output, _like(target, output, "binary_cross_entropy"), reduction=reduction
        )

    return loss
