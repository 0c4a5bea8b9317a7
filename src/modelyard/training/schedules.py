"""Learning-rate schedules by name, over torch's ``lr_scheduler`` classes.

Target ``(opts, optimizer, *, epochs, steps_per_epoch) -> Schedule``. A ``Schedule`` knows
whether its scheduler moves once per optimizer step (cosine, one_cycle: smooth curves
over the whole run) or once per epoch (step, exponential, reduce_on_plateau), so the
loop just calls ``step_batch()`` after every optimizer step and ``step_epoch(metrics)``
after every epoch. Its state is JSON-safe, for checkpoints without pickle.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch.optim import lr_scheduler

from modelyard._validation import StrictModel
from modelyard.components import ComponentRegistry
from modelyard.errors import SpecError
from modelyard.training import _json
from modelyard.training.early_stopping import resolve_mode

__all__ = [
    "SCHEDULES",
    "Schedule",
    "StepOptions",
    "ExponentialOptions",
    "CosineOptions",
    "OneCycleOptions",
    "PlateauOptions",
    "WarmupOptions",
    "CosineWarmupOptions",
]

#: Registry of schedules; target ``(opts, optimizer, *, epochs, steps_per_epoch) -> Schedule``.
SCHEDULES = ComponentRegistry("schedule")


class Schedule:
    """A torch scheduler plus when it steps: after each batch or after each epoch."""

    def __init__(self, scheduler: Any, *, per: Literal["batch", "epoch"], monitor: str | None = None) -> None:
        self.scheduler = scheduler
        self.per = per
        self.monitor = monitor  # the metric ReduceLROnPlateau watches, else None

    def step_batch(self) -> None:
        """Call after every optimizer step."""
        if self.per == "batch":
            self.scheduler.step()

    def step_epoch(self, metrics: dict[str, Any]) -> None:
        """Call after every epoch with that epoch's metrics (train and validation)."""
        if self.per != "epoch":
            return
        if self.monitor is None:
            self.scheduler.step()
        else:
            self.scheduler.step(float(metrics[self.monitor]))

    def state_dict(self) -> dict[str, Any]:
        return _json.encode(self.scheduler.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(_json.decode(state))


class StepOptions(StrictModel):
    step_size: int = Field(10, ge=1)
    gamma: float = Field(0.1, gt=0.0, le=1.0)


class ExponentialOptions(StrictModel):
    gamma: float = Field(0.95, gt=0.0, le=1.0)


class CosineOptions(StrictModel):
    eta_min: float = Field(0.0, ge=0.0)


class OneCycleOptions(StrictModel):
    max_lr: float | None = Field(None, gt=0.0)
    pct_start: float = Field(0.3, gt=0.0, lt=1.0)
    div_factor: float = Field(25.0, gt=0.0)
    final_div_factor: float = Field(1e4, gt=0.0)
    anneal_strategy: Literal["cos", "linear"] = "cos"
    three_phase: bool = False
    cycle_momentum: bool = False


class WarmupOptions(StrictModel):
    """Warmup from 0 to ``train.lr`` over ``warmup_steps`` optimizer steps (or that ``warmup_ratio`` of all)."""

    warmup_steps: int | None = Field(None, ge=0)
    warmup_ratio: float | None = Field(None, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _one_warmup(self) -> WarmupOptions:
        if self.warmup_steps is not None and self.warmup_ratio is not None:
            raise ValueError(
                f"expected warmup_steps or warmup_ratio, not both; received warmup_steps {self.warmup_steps} "
                f"and warmup_ratio {self.warmup_ratio}"
            )
        return self

    def steps(self, total: int) -> int:
        # Hugging Face Trainer's rounding of a ratio: ceil(ratio * total steps).
        if self.warmup_steps is not None:
            return self.warmup_steps
        return math.ceil((self.warmup_ratio or 0.0) * total)


class CosineWarmupOptions(WarmupOptions):
    num_cycles: float = Field(0.5, gt=0.0)


class PlateauOptions(StrictModel):
    monitor: str = "val_loss"
    mode: Literal["auto", "min", "max"] = "auto"
    factor: float = Field(0.1, gt=0.0, lt=1.0)
    patience: int = Field(10, ge=0)
    threshold: float = Field(1e-4, ge=0.0)
    cooldown: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0.0)


def _total_steps(epochs: int, steps_per_epoch: int) -> int:
    return max(1, epochs * steps_per_epoch)


@SCHEDULES.component("step", "step_lr", options=StepOptions, primary="step_size")
def step(opts: StepOptions, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int) -> Schedule:
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs."""
    return Schedule(lr_scheduler.StepLR(optimizer, step_size=opts.step_size, gamma=opts.gamma), per="epoch")


@SCHEDULES.component("exponential", "exp", "exponential_decay", options=ExponentialOptions, primary="gamma")
def exponential(
    opts: ExponentialOptions, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
) -> Schedule:
    """Multiply the learning rate by ``gamma`` after every epoch."""
    return Schedule(lr_scheduler.ExponentialLR(optimizer, gamma=opts.gamma), per="epoch")


@SCHEDULES.component("cosine", "cosine_annealing", options=CosineOptions, primary="eta_min")
def cosine(opts: CosineOptions, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int) -> Schedule:
    """Half a cosine from ``train.lr`` down to ``eta_min`` over all steps of all epochs (SGDR without restarts)."""
    scheduler = lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=_total_steps(epochs, steps_per_epoch), eta_min=opts.eta_min
    )
    return Schedule(scheduler, per="batch")


class _LinearWarmup:
    """lr factor of transformers' ``get_linear_schedule_with_warmup``; an object, so LambdaLR saves its fields."""

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / max(1, self.warmup)
        return max(0.0, (self.total - step) / max(1, self.total - self.warmup))


class _CosineWarmup(_LinearWarmup):
    """lr factor of transformers' ``get_cosine_schedule_with_warmup``."""

    def __init__(self, warmup: int, total: int, num_cycles: float) -> None:
        super().__init__(warmup, total)
        self.num_cycles = num_cycles

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / max(1, self.warmup)
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * self.num_cycles * 2.0 * progress)))


@SCHEDULES.component("linear", "linear_warmup", "warmup_linear", options=WarmupOptions, primary="warmup_steps")
def linear(opts: WarmupOptions, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int) -> Schedule:
    """Linear warmup from 0 to ``train.lr``, then linear decay to 0 at the last optimizer step (BERT's recipe)."""
    total = _total_steps(epochs, steps_per_epoch)
    return Schedule(lr_scheduler.LambdaLR(optimizer, _LinearWarmup(_warmup(opts, total), total)), per="batch")


@SCHEDULES.component("cosine_warmup", "warmup_cosine", options=CosineWarmupOptions, primary="warmup_steps")
def cosine_warmup(
    opts: CosineWarmupOptions, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
) -> Schedule:
    """Linear warmup, then ``num_cycles`` cosine cycles (half a cycle: down to 0 at the last step)."""
    total = _total_steps(epochs, steps_per_epoch)
    factor = _CosineWarmup(_warmup(opts, total), total, opts.num_cycles)
    return Schedule(lr_scheduler.LambdaLR(optimizer, factor), per="batch")


def _warmup(opts: WarmupOptions, total: int) -> int:
    warmup = opts.steps(total)
    if warmup >= total:
        raise SpecError(
            f"Invalid value for `train.schedule.warmup_steps`: expected fewer than the run's {total} optimizer "
            f"steps, received {warmup}",
            field="train.schedule.warmup_steps",
        )
    return warmup


@SCHEDULES.component("one_cycle", "onecycle", "one_cycle_lr", options=OneCycleOptions, primary="max_lr")
def one_cycle(
    opts: OneCycleOptions, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
) -> Schedule:
    """Smith's 1cycle policy per step; ``max_lr`` defaults to 10 × ``train.lr``.

    It starts at ``max_lr / div_factor`` and ends at ``max_lr / (div_factor ·
    final_div_factor)``. Momentum cycling is off by default, so an optimizer keeps the
    momentum (or beta1) the spec gave it; turn on ``cycle_momentum`` for the fast.ai recipe.
    """
    top = max(group["lr"] for group in optimizer.param_groups)
    peak = opts.max_lr if opts.max_lr is not None else 10.0 * optimizer.param_groups[0]["lr"]
    # Layer-wise rates (train.layer_lr_decay): every group peaks at its own share of max_lr.
    max_lr = [peak * (group["lr"] / top) for group in optimizer.param_groups]
    try:
        scheduler = lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=max_lr,
            total_steps=_total_steps(epochs, steps_per_epoch),
            pct_start=opts.pct_start,
            anneal_strategy=opts.anneal_strategy,
            cycle_momentum=opts.cycle_momentum,
            div_factor=opts.div_factor,
            final_div_factor=opts.final_div_factor,
            three_phase=opts.three_phase,
        )
    except ValueError as exc:  # e.g. cycle_momentum with an optimizer that has no momentum
        raise SpecError(f"Invalid value for `train.schedule`: {exc}", field="train.schedule") from None
    return Schedule(scheduler, per="batch")


@SCHEDULES.component("reduce_on_plateau", "plateau", "reduce_lr_on_plateau", options=PlateauOptions, primary="monitor")
def reduce_on_plateau(
    opts: PlateauOptions, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
) -> Schedule:
    """Multiply the learning rate by ``factor`` when ``monitor`` stalls for ``patience`` epochs."""
    scheduler = lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode=resolve_mode(opts.monitor, opts.mode),
        factor=opts.factor,
        patience=opts.patience,
        threshold=opts.threshold,
        cooldown=opts.cooldown,
        min_lr=opts.min_lr,
    )
    return Schedule(scheduler, per="epoch", monitor=opts.monitor)
