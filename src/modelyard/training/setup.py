"""Everything the loop needs, built and checked before the first step.

``build_run`` turns (network, prepared data, TrainSpec, seed) into a ``TrainingRun``:
device, precision, batches, loss, optimizer, schedule, metrics, early stopping and
generators. Every spec problem that can be found here is raised here, so a run never
fails halfway through an epoch for a reason that was knowable at the start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from modelyard import fast_paths
from modelyard.errors import SpecError
from modelyard.metrics import MetricSet, metric_names
from modelyard.spec import TrainSpec
from modelyard.training import fast
from modelyard.training.batches import (
    InMemoryBatches,
    PoissonBatches,
    StreamingBatches,
    check_split,
    is_tensor_split,
    split_size,
)
from modelyard.training.distributed import backend_for, shard
from modelyard.training.early_stopping import EarlyStopping
from modelyard.training.evaluation import metric_activation
from modelyard.training.fast.allocator import allocator_state
from modelyard.training.fast.cross_entropy import value_and_grad_for
from modelyard.training.fast.dense_step import DenseStep, dense_stack
from modelyard.training.fast.frozen_features import frozen_features
from modelyard.training.fast.fused_adam import fast_step
from modelyard.training.fast.fused_forward import fused_forward
from modelyard.training.layer_lr import layer_groups
from modelyard.training.losses import LOSSES, LossFn
from modelyard.training.optimizers import OPTIMIZERS, implementation
from modelyard.training.precision_trial import precision_trial
from modelyard.training.privacy import PrivateTraining, check_private, make_private
from modelyard.training.regularization import penalized_parameters
from modelyard.training.runtime import (
    BF16,
    Precision,
    available_cores,
    cpu_threads,
    idle_cores,
    resolve_device,
    resolve_precision,
    wants_channels_last,
    worth_bf16_on_cpu,
)
from modelyard.training.schedules import SCHEDULES, Schedule
from modelyard.training.sharding import shard_network

__all__ = ["TrainingRun", "build_run"]

log = logging.getLogger(__name__)

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass
class TrainingRun:
    """The built pieces of one fit; ``runtime`` reports which fast paths are in use."""

    spec: TrainSpec
    network: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]  # the network, its torch.compile'd form, or its head
    device: torch.device
    precision: Precision
    batches: InMemoryBatches | StreamingBatches | PoissonBatches
    n_train: int
    step_sizes: torch.Tensor  # [steps] samples per step, on the device (weights the loss mean)
    val: Any
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    schedule: Schedule | None
    scaler: torch.amp.GradScaler | None
    metrics: MetricSet
    early: EarlyStopping | None
    shuffle_gen: torch.Generator
    aug_gen: torch.Generator
    augment: Augment | None
    penalized: list[torch.Tensor]
    task: str
    num_classes: int | None
    threads: int
    dense: DenseStep | None = None  # the fused dense-stack step, when the network is one
    optimizer_step: Callable[[], Any] | None = None  # optimizer.step or the direct fused-kernel call
    runtime: dict[str, Any] = field(default_factory=dict)
    evaluated: nn.Module | None = None  # what validation runs: the head on frozen features, else the network
    compile_checked: bool = False  # the compiled forward has run once (or compilation is off)
    private: PrivateTraining | None = None  # DP-SGD's step and accountant (train.privacy)
    # train.accumulate_batches > 1: each batch's share of its optimizer step's samples (else empty)
    step_weights: list[float] = field(default_factory=list)
    sharded: bool = False  # FSDP (train.distributed.strategy fsdp): checkpoints gather the shards on rank 0


def _augmenter(prepared: Any) -> Augment | None:
    pipeline = getattr(prepared, "pipeline", None)
    make = getattr(pipeline, "augmenter", None)
    return make() if callable(make) else None


def _present(split: Any) -> Any:
    """The split, or None when it is absent or empty (a validation fraction of 0)."""
    if split is None or (hasattr(split, "x") and (split.x is None or split.x.shape[0] == 0)):
        return None
    return split


def _step_sizes(n: int, batch_size: int, steps: int, device: torch.device, *, variable: bool) -> torch.Tensor:
    if variable:  # Poisson batches: the loop writes each step's size as it takes it
        return torch.zeros(steps, device=device)
    sizes = torch.full((steps,), float(batch_size))
    sizes[-1] = n - batch_size * (steps - 1)
    return sizes.to(device)


def _step_weights(sizes: list[float], accumulate: int) -> list[float]:
    """Each batch's share of the samples of its accumulation group: the summed weighted batch-mean
    gradients are then the big batch's mean gradient, also when the last group is short."""
    weights = []
    for start in range(0, len(sizes), accumulate):
        group = sizes[start : start + accumulate]
        weights += [size / sum(group) for size in group]
    return weights


def optimizer_steps(batches: int, accumulate: int) -> int:
    """Optimizer steps per epoch: one per group of ``accumulate`` batches, a short last group included."""
    return -(-batches // accumulate)


def _check_monitors(spec: TrainSpec, has_val: bool, run_schedule: Schedule | None) -> None:
    """Monitored names must be ones the history will contain: say so before training."""
    names = ["loss", *metric_names(spec.metrics)]
    logged = names + ([f"val_{n}" for n in names] if has_val else [])
    watched = []
    if spec.early_stopping is not None:
        watched.append(("train.early_stopping.monitor", spec.early_stopping.monitor))
    if run_schedule is not None and run_schedule.monitor is not None:
        watched.append(("train.schedule.monitor", run_schedule.monitor))
    for where, name in watched:
        if name not in logged:
            why = (
                " (there is no validation split: set data.validation)"
                if name.startswith("val_") and not has_val
                else ""
            )
            raise SpecError(
                f"Invalid value for `{where}`: expected one of {', '.join(logged)}, received {name!r}{why}", field=where
            )


def build_run(
    network: nn.Module,
    prepared: Any,
    spec: TrainSpec,
    *,
    seed: int,
    loss_fn: LossFn | None = None,
    recorded_precision: str | None = None,
) -> TrainingRun:
    """Build and check everything for ``fit``; moves the network and the data to the device.

    ``loss_fn`` replaces the spec's loss for training steps (distillation's teacher + label loss).
    ``recorded_precision``: what a checkpoint's run computed in (``runtime["precision"]``), which a
    resumed ``precision: auto`` run keeps instead of choosing again.
    """
    device = resolve_device(spec.device)
    train = prepared.train
    if train is None:
        raise SpecError("Invalid data for training: the prepared data has no training split", field="data")
    check_split(train, "training")
    val = _present(getattr(prepared, "val", None))
    if val is not None:
        check_split(val, "validation")
        if is_tensor_split(val):  # evaluated every epoch: keep it on the device too
            val = SimpleNamespace(x=val.x.to(device, non_blocking=True), y=val.y.to(device, non_blocking=True))
    n = split_size(train)
    # A DDP worker (train.distributed inside a process group): its stride of every global batch.
    rank, workers = shard() if spec.distributed is not None else (0, 1)
    ddp = spec.distributed is not None and workers > 1
    if spec.privacy is not None:
        if loss_fn is not None:
            raise SpecError(
                "Invalid value for `train.privacy`: differentially private training takes the spec's loss, "
                "received a replacement loss (distillation); train without privacy",
                field="train.privacy",
            )
        check_private(spec.privacy, network, train)
    batch_size = n if spec.batch_size == "full" else min(int(spec.batch_size) * workers, n)
    in_memory = is_tensor_split(train)
    threads = (
        cpu_threads(network, batch_size, idle_cores(available_cores())) if device.type == "cpu" else available_cores()
    )
    if spec.distributed is not None:  # the worker's share of the machine
        threads = min(threads, spec.distributed.cpus_per_worker)
    loss = loss_fn or LOSSES.build(spec.loss)
    # DP-SGD runs in fp32: its clipping and noise are calibrated on fp32 gradients (the spec refuses fp16/bf16).
    wanted = "fp32" if spec.privacy is not None else spec.precision
    precision = resolve_precision(wanted, device, heavy=worth_bf16_on_cpu(network, batch_size))
    trial = None
    if wanted == "auto" and recorded_precision in ("fp32", "bf16", "fp16"):
        precision = resolve_precision(recorded_precision, device)
    elif wanted == "auto" and precision is BF16 and device.type == "cpu" and in_memory and not ddp:
        # Where the rule says bf16 on a CPU, a timed trial decides (training/precision_trial.py).
        dense = spec.accumulate_batches == 1 and not spec.compile
        bs = min(batch_size, n)
        trial = precision_trial(
            network,
            train.x[:bs],
            train.y[:bs],
            loss,
            threads=threads,
            dense=dense,
            value_and_grad=value_and_grad_for(spec.loss) if loss_fn is None else None,
        )
        precision = trial.chosen
    sample_shape = tuple(train.x.shape[1:]) if in_memory else tuple(getattr(network, "input_shape", ()))
    channels_last = wants_channels_last(network, sample_shape) and spec.privacy is None
    network.to(device)
    if channels_last:
        network.to(memory_format=torch.channels_last)
    # FSDP replaces the parameters by this worker's shards: before the optimizer collects them.
    sharded = ddp and spec.distributed is not None and spec.distributed.strategy == "fsdp"
    if sharded:
        shard_network(network, device)
    frozen = None
    # Not under DP: the private step runs the whole network with Opacus's hooks on it.
    # Not under DDP either: the gradient all-reduce runs in DDP's autograd hooks and forward.
    plain = spec.privacy is None and not ddp
    if (
        plain
        and in_memory
        and not spec.compile
        and _augmenter(prepared) is None
        and (val is None or is_tensor_split(val))
    ):
        # A frozen encoder up to the pooling: its vectors once per split, then only the head trains.
        frozen = frozen_features(network, train, val, device=device, precision=precision)
        if frozen is not None:
            train, val = frozen.train, frozen.val

    # Dropout and other in-model randomness draw from the global generator; the order of
    # samples and augmentation have their own, so each stream is reproducible on its own.
    # The sample order is the same on every worker (each takes its stride); dropout draws differ.
    torch.manual_seed(seed + rank)
    shuffle_gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=device).manual_seed(seed + 1 + 7919 * rank)
    if spec.privacy is not None:
        batches: InMemoryBatches | StreamingBatches | PoissonBatches = PoissonBatches(
            train.x, train.y, batch_size=batch_size, generator=shuffle_gen, device=device
        )
    elif in_memory:
        batches = InMemoryBatches(
            train.x,
            train.y,
            batch_size=batch_size,
            shuffle=spec.shuffle,
            generator=shuffle_gen,
            device=device,
            channels_last=channels_last,
            pad_id=network.pad_id if getattr(network, "any_length", False) and frozen is None else None,
            group_by_length=spec.group_by_length,
            lengths=frozen.lengths if frozen is not None else None,
            shard=(rank, workers),
        )
    else:
        batches = StreamingBatches(
            train,
            batch_size=batch_size,
            shuffle=spec.shuffle,
            generator=shuffle_gen,
            device=device,
            workers=min(4, max(0, threads - 1)),
            channels_last=channels_last,
        )
    trainable = [p for p in network.parameters() if p.requires_grad]
    if not trainable:
        raise SpecError(
            "Invalid value for `model.layers`: expected at least one trainable parameter, received none",
            field="model.layers",
        )
    params: list[Any] = (
        trainable if spec.layer_lr_decay is None else layer_groups(network, lr=spec.lr, decay=spec.layer_lr_decay)
    )
    optimizer = OPTIMIZERS.build(spec.optimizer, params, lr=spec.lr, weight_decay=spec.weight_decay)
    schedule = None
    if spec.schedule is not None:
        steps = optimizer_steps(len(batches), spec.accumulate_batches)
        schedule = SCHEDULES.build(spec.schedule, optimizer, epochs=spec.epochs, steps_per_epoch=steps)
    num_classes = getattr(prepared, "num_classes", None)
    metrics = MetricSet(
        spec.metrics,
        task=spec.task,
        num_classes=num_classes,
        activation=metric_activation(spec.loss.type, network),
        device=device,
    )
    _check_monitors(spec, val is not None, schedule)

    forward: Callable[[torch.Tensor], torch.Tensor] = network if frozen is None else frozen.head
    dense = None
    private = None
    if sharded:
        pass  # fully_shard's hooks on the network itself all-gather weights and reduce-scatter gradients
    elif ddp:
        # Every step through DDP's forward and autograd hooks (the gradient all-reduce): no fast path is built.
        ids = (
            [device.index if device.index is not None else torch.cuda.current_device()]
            if device.type == "cuda"
            else None
        )
        forward = torch.nn.parallel.DistributedDataParallel(network, device_ids=ids)
    elif frozen is not None:
        pass  # the head is a few layers on pooled vectors: autograd
    elif spec.privacy is not None:
        # Every step goes through Opacus's hooks and DP optimizer: no fast path is even built
        # (the tape-free dense step bypasses the hooks, the fused kernel call bypasses optimizer.step).
        private = make_private(
            spec.privacy, network, optimizer, loss, batches, epochs=spec.epochs, device=device, seed=seed
        )
    elif spec.compile:
        forward = torch.compile(network)  # compiled lazily at the first step; the loop falls back on failure
    elif not precision.scaler and spec.accumulate_batches == 1 and (ops := dense_stack(network)) is not None:
        # (Not with accumulation: the fused dense step overwrites the gradients instead of adding to them.)
        # The tape-free loss gradient belongs to the spec's loss; a replacement (distillation) has none.
        value_and_grad = value_and_grad_for(spec.loss) if loss_fn is None else None
        dense = DenseStep(network, ops, dtype=precision.dtype, value_and_grad=value_and_grad)
    elif (fused := fused_forward(network, device=device, autocast_dtype=precision.dtype)) is not None:
        forward = fused
    # A process-wide setting: the entry points choose it (training.fast.allocator); fit reports it.
    allocator = allocator_state() if device.type == "cpu" else "default"
    scaler = torch.amp.GradScaler(device.type) if precision.scaler else None
    plain_step = scaler is None and private is None and not ddp
    direct = fast_step(optimizer, persistent_grads=dense is not None) if plain_step else None
    off = "train.privacy" if private is not None else "train.distributed" if ddp else None
    step_sizes = (
        torch.tensor(batches.local_sizes(), dtype=torch.float32, device=device)
        if ddp and isinstance(batches, InMemoryBatches)
        else _step_sizes(n, batches.batch_size, len(batches), device, variable=private is not None)
    )
    return TrainingRun(
        spec=spec,
        network=network,
        forward=forward,
        device=device,
        precision=precision,
        batches=batches,
        n_train=n,
        step_sizes=step_sizes,
        step_weights=_step_weights(step_sizes.tolist(), spec.accumulate_batches) if spec.accumulate_batches > 1 else [],
        val=val,
        loss_fn=loss,
        optimizer=optimizer,
        schedule=schedule,
        scaler=scaler,
        metrics=metrics,
        optimizer_step=direct or optimizer.step,
        early=EarlyStopping(spec.early_stopping) if spec.early_stopping is not None else None,
        shuffle_gen=shuffle_gen,
        aug_gen=aug_gen,
        augment=_augmenter(prepared),
        penalized=penalized_parameters(network) if (spec.l1 or spec.l2) else [],
        task=spec.task,
        num_classes=num_classes,
        threads=threads,
        dense=dense,
        evaluated=frozen.head if frozen is not None else network,
        compile_checked=not spec.compile,
        private=private,
        sharded=sharded,
        runtime={
            "batching": batches.kind,
            "optimizer": implementation(optimizer),
            "optimizer_step": "kernel" if direct is not None else "torch",
            "precision": precision.name,
            **({"precision_trial": trial.report()} if trial is not None else {}),
            "device": str(device),
            "channels_last": channels_last,
            "threads": threads,
            "compiled": bool(spec.compile),
            "step": dense.kind if dense is not None else ("dp-sgd" if private is not None else "autograd"),
            "rewrites": dict(getattr(forward, "rewrites", {})),
            "frozen_features": frozen.kind if frozen is not None else "off",
            "allocator": allocator,
            "fast_paths": fast_paths.report(list(fast.TRAINING), off=off),
            **(
                {
                    "distributed": {
                        "engine": spec.distributed.engine,
                        "workers": workers,
                        "backend": backend_for(spec.distributed, spec.device),
                        "strategy": spec.distributed.strategy,
                        "global_batch": batches.batch_size,
                    }
                }
                if ddp and spec.distributed is not None
                else {}
            ),
        },
    )
