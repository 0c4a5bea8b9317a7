"""``precision: auto`` on a CPU that computes bf16: a short timed trial at fit start decides.

Whether bf16 autocast beats fp32 on a CPU depends on more than the matrix work per step
(``runtime.worth_bf16_on_cpu`` only rules out what surely loses): the casts of every weight each
step, the fast path the step takes, the cores. On an AMX Xeon the Fashion-MNIST MLP (784-256-128-10,
batch 128) trained at ~108k samples/s under bf16 against ~124k in fp32, though its ~30M
multiply-accumulates per step pass the rule. So where the rule says bf16, ``precision_trial`` times
the step the loop would take (the fused dense step for a dense stack, else forward + backward
under autocast) in both precisions on the network itself and a first batch of the training split, alternating
(the best of at least ``TRIAL_STEPS`` each, after ``WARMUP_STEPS``), and bf16 is kept only when
it is clearly faster (``MARGIN``). A step writes only gradients and, in train mode, buffers
(batch-norm statistics); ``_restored`` puts those and the train/eval mode back and ``fork_rng``
every random stream, so a run that keeps fp32 ends with the weights an fp32 run ends with. (Not
a deep copy: a pruned network's ``weight`` is a tensor computed from ``weight_orig`` and the mask,
which ``copy.deepcopy`` refuses.)

The choice is recorded in the run's ``runtime`` (``precision`` and ``precision_trial``), which each
checkpoint keeps; ``train --resume`` takes it from there instead of timing again, so a resumed
run computes in the precision it started with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from modelyard.training.fast.dense_step import DenseStep, dense_stack
from modelyard.training.runtime import BF16, FP32, Precision

__all__ = ["MARGIN", "TRIAL_STEPS", "WARMUP_STEPS", "TrialResult", "precision_trial"]

log = logging.getLogger(__name__)

#: Untimed warm-up steps per precision (allocation, oneDNN's kernel choice and JIT).
WARMUP_STEPS = 2
#: Timed steps per precision at least, alternating fp32, bf16 ...
TRIAL_STEPS = 5
#: ... and more, up to ``MAX_STEPS``, until the timed steps took this long in all (small nets).
TRIAL_BUDGET_S = 0.25
MAX_STEPS = 50
#: bf16 is kept only when its median step takes at most this share of fp32's.
MARGIN = 0.95


@dataclass(frozen=True)
class TrialResult:
    chosen: Precision
    fp32_ms: float
    bf16_ms: float
    steps: int

    def report(self) -> dict[str, Any]:
        """What ``FitResult.runtime["precision_trial"]`` says (and a checkpoint keeps)."""
        return {
            "fp32_ms": round(self.fp32_ms, 3),
            "bf16_ms": round(self.bf16_ms, 3),
            "steps": self.steps,
            "chosen": self.chosen.name,
        }


def _step(
    network: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    dtype: torch.dtype | None,
    *,
    dense: bool,
    value_and_grad: Any,
) -> Callable[[], None]:
    """One training step's forward and backward in ``dtype`` (None: fp32), as the loop would take it."""
    ops = dense_stack(network) if dense else None
    if ops is not None:
        dense = DenseStep(network, ops, dtype=dtype, value_and_grad=value_and_grad)
        return lambda: dense(x, y, loss)

    def autograd_step() -> None:
        with torch.autocast("cpu", dtype=dtype) if dtype is not None else nullcontext():
            value = loss(network(x), y)
        value.backward()
        network.zero_grad(set_to_none=True)

    return autograd_step


@contextmanager
def _restored(network: nn.Module) -> Iterator[nn.Module]:
    """``network`` in train mode; afterwards its gradients, buffers and modes as they were."""
    modes = {module: module.training for module in network.modules()}
    grads = {p: None if p.grad is None else p.grad.clone() for p in network.parameters()}
    buffers = [(b, b.clone()) for b in network.buffers()]
    try:
        yield network.train()
    finally:
        for module, training in modes.items():
            module.training = training
        for p, grad in grads.items():
            p.grad = grad
        with torch.no_grad():
            for b, value in buffers:
                b.copy_(value)


def _time_ms(step: Callable[[], None]) -> float:
    started = time.perf_counter()
    step()
    return (time.perf_counter() - started) * 1000.0


def precision_trial(
    network: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    threads: int,
    dense: bool,
    value_and_grad: Any = None,
) -> TrialResult:
    """Time fp32 against bf16 autocast on ``network`` (CPU; left as it was) for the batch ``x``, ``y``.

    ``dense``: the loop will take the fused dense step (a dense stack without loss scaling or
    accumulation), so that is what is timed; otherwise forward + backward through autograd.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]), _restored(network) as trial:
            steps = {
                p.name: _step(trial, x, y, loss, p.dtype, dense=dense, value_and_grad=value_and_grad)
                for p in (FP32, BF16)
            }
            for _ in range(WARMUP_STEPS):
                for step in steps.values():
                    step()
            times: dict[str, list[float]] = {"fp32": [], "bf16": []}
            while len(times["fp32"]) < MAX_STEPS and (
                len(times["fp32"]) < TRIAL_STEPS or sum(map(sum, times.values())) < TRIAL_BUDGET_S * 1000.0
            ):
                for name, step in steps.items():
                    times[name].append(_time_ms(step))
    finally:
        torch.set_num_threads(previous)
    # The fastest step of each: what the hardware does when no other process takes the core for a moment
    # (the machine may be shared; a median still moves with the neighbours' load).
    fp32_ms, bf16_ms = min(times["fp32"]), min(times["bf16"])
    chosen = BF16 if bf16_ms <= MARGIN * fp32_ms else FP32
    log.info(
        "precision auto: a step took %.2f ms in fp32, %.2f ms in bf16; training in %s", fp32_ms, bf16_ms, chosen.name
    )
    return TrialResult(chosen, fp32_ms, bf16_ms, len(times["fp32"]))
