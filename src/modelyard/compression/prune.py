"""Magnitude pruning: zero the smallest weights, or remove whole neurons and channels.

Unstructured pruning (``torch.nn.utils.prune.l1_unstructured``) zeroes the given fraction
of every dense and conv weight, smallest |w| first; the network keeps its shape (the zeros
are stored, so the file does not shrink). While fine-tuning, torch's pruning masks keep
the zeros at zero; they are then made permanent.

Structured pruning removes the fraction of each prunable layer's output units (dense
neurons, conv filters) with the smallest L2 norm, and the matching inputs of the layer
that consumes them, through activations, dropout, pooling, batch norm and flatten. The
spec's ``units``/``filters`` are rewritten, so the stored model really is smaller. The
output layer is never pruned. With activations where f(0) = 0 and no batch norm in
between, the smaller network computes exactly what the big one does with those units
masked to zero.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from modelyard.errors import InputError
from modelyard.nn import Network, build_model

__all__ = [
    "StructuredPlan",
    "check_fraction",
    "finalize_unstructured",
    "plan_structured",
    "prune_structured",
    "prune_unstructured",
    "sparsity",
]

_PRODUCERS = {"dense": "linear", "conv1d": "conv", "conv2d": "conv"}
# Layers that act on each channel separately, so a removed channel simply disappears.
_PER_CHANNEL = {
    "activation",
    "identity",
    "leaky_relu",
    "relu",
    "elu",
    "gelu",
    "selu",
    "sigmoid",
    "silu",
    "softplus",
    "tanh",
    "dropout",
    "maxpool",
    "maxpool1d",
    "maxpool2d",
    "avgpool",
    "avgpool1d",
    "avgpool2d",
    "global_avg_pool",
    "global_max_pool",
}


def check_fraction(fraction: Any) -> float:
    """The pruning fraction as a float in (0, 1), else a one-line InputError."""
    ok = isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0.0 < float(fraction) < 1.0
    if not ok:
        raise InputError(
            f"Invalid value for `--prune`: expected a fraction between 0 and 1 (exclusive) such as 0.5, "
            f"received {fraction!r}",
            field="--prune",
        )
    return float(fraction)


def _weighted(network: nn.Module) -> list[nn.Module]:
    return [m for m in network.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]


def prune_unstructured(network: Network, fraction: float) -> int:
    """Mask the smallest ``fraction`` of each dense/conv weight (masks stay until finalize)."""
    modules = _weighted(network)
    for module in modules:
        torch_prune.l1_unstructured(module, "weight", amount=fraction)
    return len(modules)


def finalize_unstructured(network: Network) -> None:
    """Make the masks permanent: plain ``weight`` parameters with zeros (loads like any model)."""
    for module in _weighted(network):
        if torch_prune.is_pruned(module):
            torch_prune.remove(module, "weight")


def sparsity(network: nn.Module) -> tuple[int, int]:
    """(nonzero parameters, all parameters)."""
    params = list(network.parameters())
    return sum(int(torch.count_nonzero(p)) for p in params), sum(p.numel() for p in params)


@dataclass
class StructuredPlan:
    """Which output units each pruned spec layer keeps, and how its consumer reads them."""

    keep: dict[int, torch.Tensor]  # spec layer index → kept output unit indices (sorted)
    consumer: dict[int, tuple[int, int]]  # producer index → (consumer index, values per unit after flatten)
    norms: dict[int, list[int]]  # producer index → batch norm layer indices between
    skipped: list[str]  # why some layers were left whole


def _types(spec: dict[str, Any]) -> list[str]:
    return [layer["type"] for layer in spec["model"]["layers"]]


def _consumer(
    network: Network, types: list[str], spec: dict[str, Any], i: int
) -> tuple[int | None, int, list[int], str]:
    """The next dense/conv layer reading layer ``i``'s units, values per unit, batch norms, or why none."""
    group, norms = 1, []
    rank = len(network.records[i].output_shape)
    for j in range(i + 1, len(types)):
        kind = types[j]
        opts = spec["model"]["layers"][j].get("options", {})
        if kind in _PER_CHANNEL and not (kind == "activation" and opts.get("activation") == "softmax"):
            continue
        if kind == "batchnorm":
            norms.append(j)
            continue
        if kind == "flatten" and group == 1 and rank >= 2:
            group = math.prod(network.records[j - 1].output_shape[1:])  # [C, *spatial] → C blocks of this size
            continue
        if kind in _PRODUCERS:
            fits = (kind == "dense") if (group > 1 or rank == 1) else (kind != "dense")
            if fits:
                return j, group, norms, ""
            return None, 1, [], f"model.layers[{i}] feeds {kind} model.layers[{j}] along another axis"
        return None, 1, [], f"model.layers[{i}] is followed by {kind} (model.layers[{j}]), which mixes its units"
    return None, 1, [], f"model.layers[{i}] is the output layer"


def plan_structured(network: Network, spec: dict[str, Any], fraction: float) -> StructuredPlan:
    """Pick the units to keep in every prunable layer (largest L2 norm of their weights first)."""
    types = _types(spec)
    plan = StructuredPlan({}, {}, {}, [])
    for i, kind in enumerate(types):
        if kind not in _PRODUCERS:
            continue
        j, group, norms, why = _consumer(network, types, spec, i)
        if j is None:
            if "output layer" not in why:
                plan.skipped.append(why)
            continue
        weight = getattr(network.layers[i], _PRODUCERS[kind]).weight.detach()
        units = weight.shape[0]
        keep_n = max(1, units - round(fraction * units))
        norm = weight.reshape(units, -1).norm(dim=1)
        plan.keep[i] = torch.sort(torch.topk(norm, keep_n).indices).values
        plan.consumer[i] = (j, group)
        plan.norms[i] = norms
    if not plan.keep:
        raise InputError(
            f"Cannot prune structurally: no dense or conv layer feeds another one ({'; '.join(plan.skipped) or 'only the output layer has weights'}); "
            f"use unstructured pruning instead",
            field="--structured",
        )
    return plan


def _input_index(keep: torch.Tensor, group: int) -> torch.Tensor:
    """Consumer input positions of the kept units: unit c covers [c·group, (c+1)·group)."""
    if group == 1:
        return keep
    return (keep[:, None] * group + torch.arange(group)[None, :]).reshape(-1)


def prune_structured(
    network: Network, spec: dict[str, Any], plan: StructuredPlan, *, loss: str | None
) -> tuple[Network, dict[str, Any]]:
    """A new, smaller network (and its spec) holding the kept units' weights."""
    new_spec = copy.deepcopy(spec)
    for i, keep in plan.keep.items():
        layer = new_spec["model"]["layers"][i]
        layer["options"]["units" if layer["type"] == "dense" else "filters"] = len(keep)
    small = build_model(new_spec["model"], loss=loss)
    out_keep: dict[int, torch.Tensor] = dict(plan.keep)
    in_keep: dict[int, torch.Tensor] = {}
    for i, keep in plan.keep.items():
        j, group = plan.consumer[i]
        in_keep[j] = _input_index(keep, group)
        for b in plan.norms[i]:
            out_keep[b] = keep
    state: dict[str, torch.Tensor] = {}
    for key, value in network.state_dict().items():
        index = int(key.split(".")[1])  # "layers.<i>.<...>"
        tensor = value.detach()
        if index in out_keep and tensor.ndim >= 1:
            tensor = tensor.index_select(0, out_keep[index])
        if index in in_keep and key.endswith("weight") and tensor.ndim >= 2:
            tensor = tensor.index_select(1, in_keep[index])
        state[key] = tensor.clone()
    small.load_state_dict(state, strict=True)
    return small, new_spec
