"""THE training loop: ``fit(network, prepared, train_spec, seed=...) -> FitResult``.

The fast path is the default: data lives on the device and batches are gathered by index
(see ``batches``), the optimizer runs fused or foreach kernels, bf16 autocast where the
hardware computes bf16, channels_last for conv nets, and no host sync per step: the
per-step losses go into a device buffer and network outputs are kept for the metrics,
which are updated once per epoch (or per large chunk). Values are read on the host only
every ``log_every`` steps (progress bar, NaN check) and at the end of an epoch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modelyard.errors import TrainingError
from modelyard.metrics import MetricSet
from modelyard.spec import TrainSpec
from modelyard.training.checkpoint import load_checkpoint, save_checkpoint
from modelyard.training.distributed import all_sum, fit_distributed, gather_rows, in_group, shard
from modelyard.training.early_stopping import is_improvement
from modelyard.training.evaluation import evaluate
from modelyard.training.progress import ProgressBar
from modelyard.training.regularization import clip_gradients, weight_penalty
from modelyard.training.resume import restore, snapshot
from modelyard.training.runtime import autocast
from modelyard.training.setup import TrainingRun, build_run

__all__ = ["fit", "FitResult"]

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, dict[str, Any]], None]

# Network outputs kept for the metrics before they are folded in (elements, ~64 MB of fp32).
_METRIC_CHUNK = 1 << 24


@dataclass
class FitResult:
    """What ``fit`` returns: per-epoch history, the best epoch and what ran.

    ``runtime`` holds the paths taken, e.g. ``{"batching": "in-memory-index",
    "optimizer": "fused", "precision": "bf16", "device": "cpu", "channels_last": False,
    "threads": 2, "compiled": False}``.
    """

    history: list[dict[str, Any]]
    best_epoch: int | None
    stopped_early: bool
    runtime: dict[str, Any]
    train_time_s: float
    privacy: dict[str, Any] | None = None  # train.privacy: the epsilon spent and how (PrivateTraining.report)


class _Outputs:
    """Training outputs kept on the device and folded into the metrics in large chunks."""

    def __init__(self, metrics: MetricSet, *, chunk: float = _METRIC_CHUNK) -> None:
        self.metrics = metrics
        self.chunk = chunk
        self.parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.size = 0

    def add(self, out: torch.Tensor, target: torch.Tensor) -> None:
        self.parts.append((out.detach(), target))
        self.size += out.numel()
        if self.size >= self.chunk:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            # Under DDP every worker folds in all workers' outputs: the metrics of the global batches.
            outs, targets = torch.cat([o for o, _ in self.parts]), torch.cat([t for _, t in self.parts])
            self.metrics.update(gather_rows(outs), gather_rows(targets))
        self.parts, self.size = [], 0


def _diverged(run: TrainingRun, losses: torch.Tensor, upto: int, epoch: int) -> TrainingError:
    finite = torch.isfinite(losses[:upto])
    step = int((~finite).nonzero()[0, 0]) + 1
    value = float(losses[step - 1])
    lr = run.optimizer.param_groups[0]["lr"]
    return TrainingError(
        f"Loss became {value} at epoch {epoch}, step {step} of {len(run.batches)}: training diverged; "
        f"lower train.lr (now {lr:g}), set train.clip_grad_norm, or check the data for NaN/inf values"
    )


def _step(run: TrainingRun, xb: torch.Tensor, yb: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``index``'s step; returns (batch mean loss, outputs), both still on the device.

    With ``train.accumulate_batches`` the batch's gradients are added, weighted by its share of
    its group's samples, and the optimizer steps after the group's last batch only.
    """
    spec = run.spec
    if run.private is not None:  # DP-SGD: Opacus's hooks, clipping, noise and accountant (training/privacy)
        return run.private.step(run.network, xb, yb)
    weight = run.step_weights[index] if run.step_weights else None
    penalty = weight_penalty(run.penalized, l1=spec.l1, l2=spec.l2)
    if weight is not None and penalty is not None:
        penalty = penalty * weight  # the weights of a group sum to 1: the penalty counts once per step
    if run.dense is not None:  # fused dense stack: fills every .grad itself (see dense_step)
        loss, out = run.dense(xb, yb, run.loss_fn)
        if penalty is not None:
            penalty.backward()  # accumulates onto the gradients just written
    else:
        with autocast(run.device, run.precision):
            out = _forward(run, xb)
            loss = run.loss_fn(out, yb)
        total = loss if weight is None else loss * weight
        if penalty is not None:
            total = total + penalty
        if run.scaler is not None:
            run.scaler.scale(total).backward()
        else:
            total.backward()
        if weight is not None and not _group_ends(run, index):
            return loss.detach(), out
    if spec.clip_grad_norm is not None or spec.clip_grad_value is not None:
        if run.scaler is not None:
            run.scaler.unscale_(run.optimizer)
        clip_gradients(run.network.parameters(), max_norm=spec.clip_grad_norm, max_value=spec.clip_grad_value)
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer_step()
    if run.dense is None:  # the fused step overwrites its persistent gradient buffers
        run.optimizer.zero_grad(set_to_none=True)
    if run.schedule is not None:
        run.schedule.step_batch()
    return loss.detach(), out


def _group_ends(run: TrainingRun, index: int) -> bool:
    """Batch ``index`` is the last of its accumulation group (or of the epoch)."""
    return (index + 1) % run.spec.accumulate_batches == 0 or index + 1 == len(run.batches)


def _forward(run: TrainingRun, xb: torch.Tensor) -> torch.Tensor:
    if run.compile_checked or run.forward is run.network:
        return run.forward(xb)
    try:  # torch.compile compiles at the first call; without a working compiler, run eagerly
        out = run.forward(xb)
    except Exception as exc:  # noqa: BLE001 - any backend failure means "not compiled"
        log.warning("torch.compile failed (%s); training without compilation", type(exc).__name__)
        run.forward, run.runtime["compiled"] = run.network, False
        return run.network(xb)
    run.compile_checked = True
    return out


def _train_epoch(run: TrainingRun, epoch: int, bar: ProgressBar) -> dict[str, Any]:
    """Train one epoch; returns ``loss`` (mean over samples) and the training metrics."""
    if not run.network.training:  # evaluate() restores the mode; train() walks every module
        run.network.train()
    run.metrics.reset()
    steps, log_every = len(run.batches), run.spec.log_every
    losses = torch.zeros(steps, device=run.device)  # per-step batch-mean loss, read rarely
    workers = shard()[1] if run.spec.distributed is not None else 1
    # Under DDP the outputs are gathered once, at the epoch's end: every worker must take part in each gather.
    outputs = _Outputs(run.metrics, chunk=_METRIC_CHUNK if workers == 1 else math.inf) if len(run.metrics) else None
    bar.start_epoch(epoch, steps)
    done, seen = 0, 0
    for step, (xb, yb) in enumerate(run.batches):
        if run.augment is not None:
            xb = run.augment(xb, run.aug_gen)
        loss, out = _step(run, xb, yb, step)
        losses[step] = loss
        if run.private is not None:  # Poisson batches differ in size
            run.step_sizes[step] = xb.shape[0]
        if outputs is not None:
            outputs.add(out, yb)
        done, seen = step + 1, seen + xb.shape[0]
        if done % log_every == 0 and done < steps:
            running = float((losses[:done] * run.step_sizes[:done]).sum()) / seen  # the one host read
            if not math.isfinite(running):
                raise _diverged(run, losses, done, epoch)
            bar.update(done, seen, running)
    total, seen = float((losses[:done] * run.step_sizes[:done]).sum()), seen
    if workers > 1:  # the mean over every worker's samples
        total, seen = all_sum([total, float(seen)], run.device)
    mean = total / max(seen, 1)
    if not math.isfinite(mean):
        raise _diverged(run, losses, done, epoch)
    bar.update(done, seen, mean)
    if outputs is not None:
        outputs.flush()
    return {"loss": mean, **run.metrics.compute()}


def fit(
    network: torch.nn.Module,
    prepared: Any,
    train_spec: TrainSpec,
    *,
    seed: int,
    on_epoch_end: EpochCallback | None = None,
    checkpoint_dir: Path | str | None = None,
    resume: bool = False,
    progress: bool = True,
    console: Any = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> FitResult:
    """Train ``network`` on ``prepared.train`` as ``train_spec`` says; validate on ``prepared.val``.

    History rows: ``epoch``, ``loss``, training metrics, ``val_loss`` and ``val_<metric>``
    when there is a validation split, ``lr`` (at the epoch's start), ``time_s`` (whole
    epoch) and ``samples_per_s`` (training throughput). Training metrics come from the
    training forward passes as the weights change (as Keras reports them), not from a
    second pass. ``on_epoch_end(epoch, row)`` runs after the epoch's checkpoint is saved.
    With ``resume`` the last checkpoint in ``checkpoint_dir`` is continued exactly.
    ``loss_fn(outputs, targets)`` replaces the spec's loss for the training steps only
    (knowledge distillation packs teacher logits into the targets); validation uses the spec's.

    ``seed`` seeds the sample order, the augmentation and torch's global generator (which
    dropout draws from), so two fits with the same seed and network give the same weights.
    """
    if train_spec.distributed is not None and not in_group():  # the driver: DDP on the spec's workers
        return fit_distributed(
            network,
            prepared,
            train_spec,
            seed=seed,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            on_epoch_end=on_epoch_end,
            loss_fn=loss_fn,
            progress=progress,
            console=console,
        )
    previous_threads = torch.get_num_threads()
    folder = Path(checkpoint_dir) if checkpoint_dir is not None and train_spec.checkpoint else None
    ckpt = load_checkpoint(folder) if resume and folder is not None else None
    recorded = dict(ckpt.extra.get("runtime") or {}) if ckpt is not None else {}
    run = build_run(
        network, prepared, train_spec, seed=seed, loss_fn=loss_fn, recorded_precision=recorded.get("precision")
    )
    if "precision_trial" in recorded:  # the trial the run started with chose the precision it resumes in
        run.runtime["precision_trial"] = recorded["precision_trial"]
    torch.set_num_threads(run.threads)
    history: list[dict[str, Any]] = []
    best_weights: dict[str, torch.Tensor] | None = None
    tracked: dict[str, Any] = {"epoch": None, "value": None}  # best epoch when there is no early stopping
    stopped, first = False, 1
    if ckpt is not None:
        best_weights = restore(run, ckpt)
        history, first = list(ckpt.history), ckpt.epoch + 1
        stopped = bool(ckpt.extra.get("stopped_early", False))
        tracked = dict(ckpt.extra.get("tracked", tracked))
        log.info("resuming after epoch %d from %s", ckpt.epoch, folder)
    restore_best = run.early is not None and run.early.spec.restore_best
    monitor = "val_loss" if run.val is not None else "loss"
    bar = ProgressBar(epochs=train_spec.epochs, enabled=progress, console=console)
    started = time.perf_counter()
    try:
        for epoch in range(first, train_spec.epochs + 1):
            if stopped:
                break
            t0 = time.perf_counter()
            lr = float(run.optimizer.param_groups[0]["lr"])
            row: dict[str, Any] = {"epoch": epoch, **_train_epoch(run, epoch, bar)}
            train_s = time.perf_counter() - t0
            if run.val is not None:
                values = evaluate(
                    run.evaluated or run.network,
                    run.val,
                    metrics=train_spec.metrics,
                    loss=train_spec.loss,
                    task=run.task,
                    num_classes=run.num_classes,
                    batch_size=max(1024, run.batches.batch_size),
                    precision=run.precision.name,
                )
                row.update({f"val_{k}": v for k, v in values.items()})
            row.update(lr=lr, time_s=time.perf_counter() - t0, samples_per_s=run.n_train / max(train_s, 1e-9))
            if run.schedule is not None:
                run.schedule.step_epoch(row)
            if is_improvement(row[monitor], tracked["value"], "min"):
                tracked = {"epoch": epoch, "value": row[monitor]}
            if run.early is not None:
                if run.early.update(epoch, row) and restore_best:
                    best_weights = {k: v.detach().clone() for k, v in run.network.state_dict().items()}
                stopped = run.early.should_stop
            history.append(row)
            # Under DDP rank 0 alone writes; under FSDP every rank gathers its shards to rank 0 first.
            if folder is not None and (shard()[0] == 0 or run.sharded):
                extra = {"seed": seed, "stopped_early": stopped, "tracked": tracked, "runtime": run.runtime}
                ckpt = snapshot(run, epoch=epoch, history=history, best_weights=best_weights, extra=extra)
                if shard()[0] == 0:
                    save_checkpoint(folder, ckpt)
            bar.end_epoch(row)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
    finally:
        bar.close()
        torch.set_num_threads(previous_threads)
        if run.private is not None:
            run.private.close()
    if restore_best and best_weights is not None:
        run.network.load_state_dict(best_weights)
    best_epoch = run.early.best_epoch if run.early is not None else tracked["epoch"]
    privacy = run.private.report() if run.private is not None else None
    return FitResult(history, best_epoch, stopped, dict(run.runtime), time.perf_counter() - started, privacy)
