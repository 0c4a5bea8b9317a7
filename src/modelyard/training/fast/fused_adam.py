"""``optimizer.step()`` for fused Adam/AdamW without the per-step Python around the kernel.

``torch.optim.Adam(fused=True).step()`` regroups its parameters, gradients and state into
lists, checks devices and dtypes and runs hooks around the fused kernel every step (what that
costs: docs/performance.md). When the gradients live in persistent buffers (``DenseStep``), those lists never
change, so ``FusedAdamStep`` builds them once and then issues the same two calls torch's
``_fused_adam`` makes: ``_foreach_add_`` on the step counts and ``_fused_adam_`` (or
``_fused_adamw_``) with the group's current hyperparameters, read every step so schedules
keep working. The optimizer object, its ``state_dict`` and checkpoints are unchanged.

The first call is a normal ``optimizer.step()`` (it creates the state, or uses the state a
resumed run loaded before it); a configuration
outside the plain case (AMSGrad, capturable, differentiable, mixed devices or dtypes, a
step hook) keeps calling ``optimizer.step()``.

A fast path behind ``modelyard.fast_paths``: the kernels are torch-private
(``FusedAdamKernels``), so ``GATE`` names the torch versions it was tested with; outside them, or
with ``MODELYARD_FAST_PATHS=0``, ``optimizer.step()`` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

from modelyard.fast_paths import Gate

__all__ = ["GATE", "FusedAdamKernels", "FusedAdamStep", "fast_step"]

GATE = Gate("fused_adam_kernel", "torch", "2.4", "2.14")

Tensor = torch.Tensor


@runtime_checkable
class FusedAdamKernels(Protocol):
    """The torch-private kernels ``torch.optim.Adam(fused=True)`` itself calls (``torch.optim.adam._fused_adam``)."""

    _fused_adam_: Callable[..., Any]
    _fused_adamw_: Callable[..., Any]
    _foreach_add_: Callable[..., Any]


def _plain(optimizer: torch.optim.Optimizer) -> bool:
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
        return False
    if not isinstance(torch, FusedAdamKernels):
        return False
    if getattr(optimizer, "_optimizer_step_pre_hooks", None) or getattr(optimizer, "_optimizer_step_post_hooks", None):
        return False
    for group in optimizer.param_groups:
        if not group.get("fused") or group.get("amsgrad") or group.get("capturable") or group.get("differentiable"):
            return False
        params = group["params"]
        if len({(p.device, p.dtype) for p in params}) > 1 or any(p.is_complex() for p in params):
            return False
    return True


class FusedAdamStep:
    """Calls the fused Adam/AdamW kernel directly over lists built at the second step."""

    def __init__(self, optimizer: torch.optim.Optimizer, kernels: FusedAdamKernels = torch) -> None:  # type: ignore[assignment]
        self.optimizer = optimizer
        self.kernels = kernels
        self.lists: list[tuple[dict, list[Tensor], list[Tensor], list[Tensor], list[Tensor], list[Tensor]]] | None = (
            None
        )

    def _build(self) -> None:
        lists = []
        for group in self.optimizer.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            state = [self.optimizer.state[p] for p in params]
            lists.append(
                (
                    group,
                    params,
                    [p.grad for p in params],
                    [s["exp_avg"] for s in state],
                    [s["exp_avg_sq"] for s in state],
                    [s["step"] for s in state],
                )
            )
        self.lists = lists

    def __call__(self) -> None:
        if self.lists is None:
            self.optimizer.step()  # creates the state the lists point into
            self._build()
            return
        decoupled_default = type(self.optimizer) is torch.optim.AdamW
        for group, params, grads, exp_avgs, exp_avg_sqs, steps in self.lists:
            if not params:
                continue
            beta1, beta2 = group["betas"]
            kernels = self.kernels
            decoupled = group.get("decoupled_weight_decay", decoupled_default)
            kernel = kernels._fused_adamw_ if decoupled else kernels._fused_adam_
            kernels._foreach_add_(steps, 1)
            kernel(
                params,
                grads,
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                lr=group["lr"],
                beta1=float(beta1),
                beta2=float(beta2),
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                amsgrad=False,
                maximize=group["maximize"],
                grad_scale=None,
                found_inf=None,
            )


def fast_step(optimizer: torch.optim.Optimizer, *, persistent_grads: bool) -> FusedAdamStep | None:
    """A ``FusedAdamStep`` when it applies (fused Adam/AdamW, gradients in fixed buffers, ``GATE`` open), else None."""
    return FusedAdamStep(optimizer) if persistent_grads and _plain(optimizer) and GATE.open() else None
