"""What the fused training paths ask of a network's modules before they bypass ``forward``."""

from __future__ import annotations

from torch import nn
from torch.nn.modules import module as module_globals

__all__ = ["leaves", "is_plain"]


def leaves(module: nn.Module) -> list[nn.Module]:
    """Modules in execution order, with nested ``nn.Sequential`` containers opened up (a
    container with hooks stays whole, so its hooks are not lost)."""
    if isinstance(module, nn.Sequential) and is_plain(module):
        return [leaf for child in module for leaf in leaves(child)]
    return [module]


def is_plain(module: nn.Module) -> bool:
    """No hooks and no parametrized weights: calling its kernels directly is what forward does.

    Pruning masks (``torch.nn.utils.prune``) are forward pre-hooks and parametrizations
    replace ``weight`` with a computed property; both must run, so such a module keeps
    going through its own ``forward`` and autograd.
    """
    if (
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or getattr(module, "_backward_pre_hooks", None)
    ):
        return False
    if any(
        name not in module._parameters
        for name in ("weight", "bias")
        if hasattr(module, name) and getattr(module, name) is not None
    ):
        return False
    return not (
        module_globals._global_forward_hooks
        or module_globals._global_forward_pre_hooks
        or module_globals._global_backward_hooks
    )
