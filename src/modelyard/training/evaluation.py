"""Loss and metrics of a network on one split, in large no-grad batches.

Used for the validation split after every epoch, for the test split after training and
by ``modelyard eval``. Sums stay on the device; values are read once at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import torch
from torch import nn

from modelyard.components import ComponentSpec
from modelyard.metrics import MetricSet
from modelyard.nn.masking import cut_padding
from modelyard.training.batches import check_split, dataset_loader, is_tensor_split, split_size
from modelyard.training.losses import LOSSES
from modelyard.training.runtime import autocast, resolve_precision, wants_channels_last, worth_bf16_on_cpu

__all__ = ["evaluate", "metric_activation"]


def metric_activation(loss_type: str | None, network: nn.Module | None = None) -> Literal["sigmoid", "softmax"] | None:
    """How metrics turn outputs into probabilities, or None when outputs are used as they are.

    A network that folded its final softmax/sigmoid into the loss says so in
    ``output_activation``; a classification loss on logits implies one even when the
    spec's last layer had no activation.
    """
    folded = getattr(network, "output_activation", None)
    if folded in ("sigmoid", "softmax"):
        return folded
    if loss_type == "binary_cross_entropy":
        return "sigmoid"
    if loss_type == "cross_entropy":
        return "softmax"
    return None


def _device_of(network: nn.Module) -> torch.device:
    for tensor in network.parameters():
        return tensor.device
    for tensor in network.buffers():
        return tensor.device
    return torch.device("cpu")


def _batches(split: Any, batch_size: int, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    if is_tensor_split(split):
        x, y = split.x, split.y
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device, non_blocking=True)
            yield xb, y[start : start + batch_size].to(device, non_blocking=True)
    else:
        for xb, yb in dataset_loader(split, batch_size=batch_size, shuffle=False):
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)


@torch.no_grad()
def evaluate(
    network: nn.Module,
    split: Any,
    *,
    metrics: Sequence[ComponentSpec],
    loss: ComponentSpec | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    task: str,
    num_classes: int | None,
    batch_size: int = 1024,
    precision: str = "fp32",
) -> dict[str, float | list]:
    """``{"loss": mean loss over samples, <metric name>: value, ...}`` for ``split``.

    ``split`` has tensors ``.x``/``.y`` or is a torch Dataset of (x, y) pairs. ``loss`` is
    the spec's loss (a ComponentSpec; it also says whether outputs are logits), a plain
    callable, or None to skip it. The network's train/eval mode is restored afterwards.
    """
    check_split(split, "evaluation")
    device = _device_of(network)
    loss_type = loss.type if isinstance(loss, ComponentSpec) else None
    loss_fn = LOSSES.build(loss) if isinstance(loss, ComponentSpec) else loss
    metric_set = MetricSet(
        metrics, task=task, num_classes=num_classes, activation=metric_activation(loss_type, network), device=device
    )
    mode = resolve_precision(precision, device, heavy=worth_bf16_on_cpu(network, batch_size))
    sample_shape = tuple(split.x.shape[1:]) if is_tensor_split(split) else tuple(getattr(network, "input_shape", ()))
    channels_last = wants_channels_last(network, sample_shape)
    was_training = network.training
    network.eval()
    total = torch.zeros((), device=device)
    try:
        cut = getattr(network, "any_length", False)  # token ids: no work on columns of pads (same outputs)
        for xb, yb in _batches(split, batch_size, device):
            if cut:
                xb = cut_padding(xb, network.pad_id)
            if channels_last and xb.ndim == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(device, mode):
                out = network(xb)
                if loss_fn is not None:
                    total += loss_fn(out, yb).float() * xb.shape[0]
            metric_set.update(out, yb)
    finally:
        network.train(was_training)
    result: dict[str, float | list] = {}
    if loss_fn is not None:
        result["loss"] = float(total) / split_size(split)
    result.update(metric_set.compute())
    return result
