"""Between a TrainingRun and a Checkpoint: what to save after an epoch, how to restore it.

Exact resume needs every source of state: weights, optimizer moments and step counts,
the schedule, early stopping, the loss scaler, the three random streams (global CPU
generator for dropout, CUDA generators, the shuffle and augmentation generators) and, for a
differentially private run, the accountant's steps and the noise generator.
"""

from __future__ import annotations

from typing import Any

import torch

from modelyard.errors import TrainingError
from modelyard.training.checkpoint import Checkpoint
from modelyard.training.setup import TrainingRun
from modelyard.training.sharding import full_state, load_full_state

__all__ = ["snapshot", "restore"]


def _rng_states(run: TrainingRun) -> dict[str, torch.Tensor]:
    states = {
        "torch_cpu": torch.get_rng_state(),
        "shuffle": run.shuffle_gen.get_state(),
        "augment": run.aug_gen.get_state(),
    }
    if run.private is not None:
        states["noise"] = run.private.noise_gen.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"cuda.{i}"] = state
    return states


def snapshot(
    run: TrainingRun,
    *,
    epoch: int,
    history: list[dict[str, Any]],
    best_weights: dict[str, torch.Tensor] | None,
    extra: dict[str, Any],
) -> Checkpoint:
    """The state after ``epoch`` completed epochs (under FSDP: a collective, whole on rank 0 only)."""
    if run.sharded:
        model, optimizer = full_state(run.network, run.optimizer)
    else:
        model, optimizer = run.network.state_dict(), run.optimizer.state_dict()
    return Checkpoint(
        epoch=epoch,
        model=model,
        optimizer=optimizer,
        history=history,
        schedule=run.schedule.state_dict() if run.schedule is not None else None,
        rng=_rng_states(run),
        early_stopping=run.early.state_dict() if run.early is not None else None,
        best_weights=best_weights,
        scaler=run.scaler.state_dict() if run.scaler is not None else None,
        # The accountant's steps: a resumed DP run spends the same epsilon as an uninterrupted one.
        extra={**extra, "privacy": run.private.state_dict()} if run.private is not None else extra,
    )


def _mismatch(what: str, exc: Exception) -> TrainingError:
    detail = " ".join(str(exc).split())[:200]
    return TrainingError(
        f"Cannot resume: the checkpoint's {what} does not match this run's spec ({detail}); "
        "resume with the spec the run started with, or train without resume"
    )


def restore(run: TrainingRun, ckpt: Checkpoint) -> dict[str, torch.Tensor] | None:
    """Load ``ckpt`` into ``run``; returns the best weights (on the device) if it kept them."""
    if run.sharded:  # a whole-network checkpoint into this worker's shards
        try:
            load_full_state(run.network, run.optimizer, ckpt.model, ckpt.optimizer)
        except (ValueError, KeyError, IndexError, RuntimeError) as exc:
            raise _mismatch("network or optimizer", exc) from None
    else:
        try:
            run.network.load_state_dict(ckpt.model, strict=True)
        except RuntimeError as exc:
            raise _mismatch("network", exc) from None
        try:
            run.optimizer.load_state_dict(ckpt.optimizer)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise _mismatch("optimizer", exc) from None
    if (ckpt.schedule is None) != (run.schedule is None):
        raise _mismatch("schedule", ValueError("one has a schedule, the other none"))
    if run.schedule is not None and ckpt.schedule is not None:
        run.schedule.load_state_dict(ckpt.schedule)
    if run.early is not None and ckpt.early_stopping is not None:
        run.early.load_state_dict(ckpt.early_stopping)
    if run.scaler is not None and ckpt.scaler is not None:
        run.scaler.load_state_dict(ckpt.scaler)
    if run.private is not None:
        if "privacy" not in ckpt.extra or "noise" not in ckpt.rng:
            raise _mismatch("privacy state", ValueError("it was saved by a run without train.privacy"))
        run.private.load_state_dict(ckpt.extra["privacy"])
        run.private.noise_gen.set_state(ckpt.rng["noise"])
    rng = ckpt.rng
    if "torch_cpu" in rng:
        torch.set_rng_state(rng["torch_cpu"])
    if "shuffle" in rng:
        run.shuffle_gen.set_state(rng["shuffle"])
    if "augment" in rng:
        run.aug_gen.set_state(rng["augment"])
    if torch.cuda.is_available():
        for key, state in rng.items():
            if key.startswith("cuda.") and int(key[5:]) < torch.cuda.device_count():
                torch.cuda.set_rng_state(state, device=int(key[5:]))
    if ckpt.best_weights is None:
        return None
    return {k: v.to(run.device) for k, v in ckpt.best_weights.items()}
