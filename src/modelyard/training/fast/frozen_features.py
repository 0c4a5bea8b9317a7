"""A frozen encoder's features computed once, and only the head trained on them.

When every layer up to a network's pooling layer (``Network.pooling_index``: the pretrained
encoder and its ``token_pool``) is frozen and computes the same thing in training as in
prediction (no active dropout, no batch statistics), each epoch would recompute the same pooled
vector for each sample. ``frozen_features`` computes them once per split, ``Network.embed`` in
no-grad batches of similar lengths cut to their longest sequence (exact: such a network takes
any length), and the loop then trains the layers after the pooling (``Head``) on those vectors:
the same losses, gradients and weights as training the whole network, for the cost of one
forward pass of the encoder per split instead of one per epoch (checked in
tests/unit/training/fast/test_frozen_features.py against a fit with the fast paths off).

The network itself, its checkpoints and the registered version are unchanged: ``Head`` holds
the network's own head modules. A fast path behind ``modelyard.fast_paths`` (no private torch
API; the gate only makes the one switch turn it off too).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from modelyard.fast_paths import Gate
from modelyard.nn.layers.attention import SelfAttention
from modelyard.nn.masking import cut_padding
from modelyard.training.batches import sequence_lengths
from modelyard.training.runtime import Precision, autocast

__all__ = ["GATE", "Head", "FrozenFeatures", "frozen_prefix", "frozen_features"]

GATE = Gate("frozen_features", "torch", "2.4", "2.14")

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)  # train mode: batch statistics

# Samples per no-grad batch of the encoder (sorted by length, so few pads per batch).
_CHUNK = 256


class Head(nn.Module):
    """The layers after the pooling, as the loop and ``evaluate`` call a network."""

    def __init__(self, layers: list[nn.Module], output_activation: str | None) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.output_activation = output_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@dataclass
class FrozenFeatures:
    """The head, the splits as pooled vectors, and which layers were computed once."""

    head: Head
    train: Any
    val: Any
    layers: int  # layers [0, layers) run once per split
    lengths: torch.Tensor  # of the training queries, for train.group_by_length

    @property
    def kind(self) -> str:
        return f"layers 0-{self.layers - 1} computed once per split, features {list(self.train.x.shape[1:])}"


def _deterministic(module: nn.Module) -> bool:
    """True when ``module`` computes the same in train mode as in eval mode."""
    for m in module.modules():
        if isinstance(m, nn.Dropout) and m.p > 0:
            return False
        if isinstance(m, SelfAttention) and m.dropout > 0:
            return False
        if isinstance(m, _BATCH_NORMS):
            return False
    return True


def frozen_prefix(network: nn.Module) -> int | None:
    """The number of leading layers (up to and with the pooling) that are frozen and deterministic, or None."""
    index = getattr(network, "pooling_index", None)
    if index is None or index + 1 >= len(network.layers):
        return None
    prefix = list(network.layers)[: index + 1]
    if any(p.requires_grad for layer in prefix for p in layer.parameters()):
        return None
    if not all(_deterministic(layer) for layer in prefix):
        return None
    return index + 1


@torch.no_grad()
def _embed(network: Any, x: torch.Tensor, device: torch.device, precision: Precision) -> torch.Tensor:
    """``network.embed`` of every row of ``x``, in batches of similar lengths; rows in their order."""
    lengths = (x != network.pad_id).sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    out: torch.Tensor | None = None
    was_training = network.training
    network.eval()
    try:
        for start in range(0, x.shape[0], _CHUNK):
            rows = order[start : start + _CHUNK]
            batch = cut_padding(x[rows].to(device), network.pad_id)
            with autocast(device, precision):
                pooled = network.embed(batch).float()
            if out is None:
                out = torch.empty((x.shape[0], *pooled.shape[1:]), device=device)
            out[rows.to(device)] = pooled
    finally:
        network.train(was_training)
    assert out is not None
    return out


def frozen_features(
    network: nn.Module, train: Any, val: Any, *, device: torch.device, precision: Precision
) -> FrozenFeatures | None:
    """The head and both splits as pooled vectors, or None when the network has no frozen encoder."""
    if not GATE.open() or not getattr(network, "any_length", False):
        return None
    count = frozen_prefix(network)
    if count is None or train.x.shape[0] == 0:
        return None
    head = Head(list(network.layers)[count:], getattr(network, "output_activation", None))
    features = SimpleNamespace(x=_embed(network, train.x, device, precision), y=train.y)
    val_features = None if val is None else SimpleNamespace(x=_embed(network, val.x, device, precision), y=val.y)
    return FrozenFeatures(head, features, val_features, count, sequence_lengths(train.x, network.pad_id))
