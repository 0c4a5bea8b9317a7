"""Optimizers by name: thin factories over torch's own implementations.

Target ``(opts, params, *, lr, weight_decay) -> torch.optim.Optimizer``. Each factory asks
torch for its fastest kernel: ``fused=True`` (one kernel for all parameters; torch 2.13
has it for SGD, Adam, AdamW and Adagrad on CPU and CUDA), else ``foreach=True`` (batched
tensor ops), else the per-parameter for-loop. ``implementation(optimizer)`` says which
one was chosen, so tests and ``FitResult.runtime`` can guard the fast path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from modelyard._validation import StrictModel
from modelyard.components import ComponentRegistry, NoOptions

__all__ = [
    "OPTIMIZERS",
    "implementation",
    "SGDOptions",
    "AdamOptions",
    "RMSpropOptions",
    "AdagradOptions",
]

#: Registry of optimizers; target ``(opts, params, *, lr, weight_decay) -> Optimizer``.
OPTIMIZERS = ComponentRegistry("optimizer")

Implementation = Literal["fused", "foreach", "for-loop"]


class SGDOptions(StrictModel):
    momentum: float = Field(0.0, ge=0.0)
    nesterov: bool = False
    dampening: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _nesterov(self) -> SGDOptions:
        # torch refuses this combination only when the optimizer is built; say it at parse time.
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                f"nesterov momentum needs momentum > 0 and dampening 0, received momentum {self.momentum} "
                f"and dampening {self.dampening}"
            )
        return self


class AdamOptions(StrictModel):
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0.0)
    amsgrad: bool = False

    @model_validator(mode="after")
    def _betas(self) -> AdamOptions:
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"expected betas in [0, 1), received {list(self.betas)}")
        return self


class RMSpropOptions(StrictModel):
    alpha: float = Field(0.99, ge=0.0, lt=1.0)
    momentum: float = Field(0.0, ge=0.0)
    centered: bool = False
    eps: float = Field(1e-8, gt=0.0)


class AdagradOptions(StrictModel):
    lr_decay: float = Field(0.0, ge=0.0)
    eps: float = Field(1e-10, gt=0.0)
    initial_accumulator_value: float = Field(0.0, ge=0.0)


def implementation(optimizer: torch.optim.Optimizer) -> Implementation:
    """Which torch kernel the optimizer steps with: "fused", "foreach" or "for-loop"."""
    group = optimizer.param_groups[0] if optimizer.param_groups else {}
    if group.get("fused"):
        return "fused"
    if group.get("foreach"):
        return "foreach"
    return "for-loop"


def _fastest(
    cls: type[torch.optim.Optimizer], params: Iterable[Any], *, fused: bool, **kwargs: Any
) -> torch.optim.Optimizer:
    """Build ``cls`` with the fastest implementation torch accepts for these parameters."""
    params = list(params)
    if fused:
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):
            pass  # e.g. a device or dtype without a fused kernel
    try:
        return cls(params, foreach=True, **kwargs)
    except (RuntimeError, ValueError, TypeError):
        return cls(params, foreach=False, **kwargs)


@OPTIMIZERS.component("gd", "gradient_descent", "full_batch_gd")
def gd(opts: NoOptions, params: Iterable[Any], *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Plain gradient descent (θ ← θ − lr·∇); the spec makes every step use the whole training set."""
    return _fastest(torch.optim.SGD, params, fused=True, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.component("sgd", options=SGDOptions, primary="momentum")
def sgd(opts: SGDOptions, params: Iterable[Any], *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Mini-batch stochastic gradient descent, optionally with (Nesterov) momentum."""
    return _fastest(
        torch.optim.SGD,
        params,
        fused=True,
        lr=lr,
        momentum=opts.momentum,
        dampening=opts.dampening,
        nesterov=opts.nesterov,
        weight_decay=weight_decay,
    )


@OPTIMIZERS.component("adam", options=AdamOptions)
def adam(opts: AdamOptions, params: Iterable[Any], *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba, 2015); ``weight_decay`` is the classic L2 term added to the gradient."""
    return _fastest(
        torch.optim.Adam,
        params,
        fused=True,
        lr=lr,
        betas=tuple(opts.betas),
        eps=opts.eps,
        amsgrad=opts.amsgrad,
        weight_decay=weight_decay,
    )


@OPTIMIZERS.component("adamw", options=AdamOptions)
def adamw(opts: AdamOptions, params: Iterable[Any], *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW (Loshchilov & Hutter, 2019): decoupled decay, taken from ``train.weight_decay`` (default 0)."""
    return _fastest(
        torch.optim.AdamW,
        params,
        fused=True,
        lr=lr,
        betas=tuple(opts.betas),
        eps=opts.eps,
        amsgrad=opts.amsgrad,
        weight_decay=weight_decay,
    )


@OPTIMIZERS.component("rmsprop", options=RMSpropOptions)
def rmsprop(opts: RMSpropOptions, params: Iterable[Any], *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """RMSprop (Hinton's lecture 6e); torch has no fused kernel for it, so it runs foreach."""
    return _fastest(
        torch.optim.RMSprop,
        params,
        fused=False,
        lr=lr,
        alpha=opts.alpha,
        eps=opts.eps,
        momentum=opts.momentum,
        centered=opts.centered,
        weight_decay=weight_decay,
    )


@OPTIMIZERS.component("adagrad", options=AdagradOptions)
def adagrad(opts: AdagradOptions, params: Iterable[Any], *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adagrad (Duchi et al., 2011): per-parameter steps shrinking with the summed squared gradients."""
    return _fastest(
        torch.optim.Adagrad,
        params,
        fused=True,
        lr=lr,
        lr_decay=opts.lr_decay,
        eps=opts.eps,
        initial_accumulator_value=opts.initial_accumulator_value,
        weight_decay=weight_decay,
    )
