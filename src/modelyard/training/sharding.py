"""Sharded data parallel (``train.distributed.strategy: fsdp``): FSDP2 ``fully_shard`` on a worker's network.

Each transformer encoder block (``EncoderBlock``, also inside a pretrained encoder) is one FSDP
unit and the rest of the network (embeddings, norms, the head) the root unit: every worker keeps
1/N of each unit's parameters, gradients and optimizer state, all-gathers a unit's weights just
before its forward (and again for its backward) and reduce-scatters its gradients after, so at
most one block is whole at a time. Gloo on CPU and NCCL on CUDA both run these collectives
(``all_gather_into_tensor``, ``reduce_scatter_tensor``; torch 2.13).

Checkpoints stay the format of a one-process run: ``full_state`` gathers the whole network and
optimizer state onto rank 0's CPU (every rank must call it: the gathers are collectives), with the
optimizer state re-keyed by parameter position as ``torch.optim.Optimizer.state_dict`` keys it, so
the driver restores it into an ordinary network and registers one ordinary model version.
``load_full_state`` puts such a checkpoint back into the shards (a replaced worker group resuming).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["shard_network", "is_sharded", "local_parameters", "full_state", "load_full_state"]


def shard_network(network: nn.Module, device: torch.device) -> nn.Module:
    """Shard ``network`` in place across the process group's workers (one unit per encoder block)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from modelyard.nn.layers.transformer import EncoderBlock

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for module in network.modules():
        if isinstance(module, EncoderBlock):
            fully_shard(module, mesh=mesh)
    fully_shard(network, mesh=mesh)
    return network


def is_sharded(network: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(network, FSDPModule)


def local_parameters(network: nn.Module) -> int:
    """Parameter values this worker holds (its shards; every value for an unsharded network)."""
    return sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in network.parameters())


def _options(**kwargs: Any) -> Any:
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def _names(network: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The optimizer's parameters by name, in its own order (the positions its state_dict uses)."""
    name_of = {id(p): name for name, p in network.named_parameters()}
    return [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_state(network: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model, optimizer) state dicts of the whole network on rank 0's CPU (empty on other ranks)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    names = _names(network, optimizer)
    model = get_model_state_dict(network, options=_options(cpu_offload=True))
    by_name = get_optimizer_state_dict(network, optimizer, options=_options(cpu_offload=True))
    if not model:  # not rank 0
        return {}, {}
    index = {name: i for i, name in enumerate(names)}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in by_name["param_groups"]]
    state = {index[name]: value for name, value in by_name["state"].items()}
    return model, {"state": state, "param_groups": groups}


def load_full_state(
    network: nn.Module, optimizer: torch.optim.Optimizer, model: dict[str, Any], optim: dict[str, Any]
) -> None:
    """Load whole-network state dicts (``full_state``'s, or a one-process run's) into the shards."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    names = _names(network, optimizer)
    set_model_state_dict(network, model, options=_options())
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in optim["param_groups"]]
    state = {names[i]: value for i, value in optim["state"].items()}
    set_optimizer_state_dict(network, optimizer, {"state": state, "param_groups": groups}, options=_options())
