"""Data-parallel training (``train.distributed``): DDP on N worker processes, through Ray Train or locally.

The driver (``fit_distributed``) hands the network, the prepared data and the spec to N workers;
each worker runs the ordinary ``fit`` inside an initialised process group, where ``build_run``
wraps the network in DistributedDataParallel (gloo on CPU, NCCL on CUDA), takes its stride of
every global batch (``InMemoryBatches(shard=...)``) and builds none of the fast paths that step
around DDP's gradient all-reduce. The loop sums losses and gathers the training outputs across
workers, so every worker reports the metrics of the whole global batch; rank 0 alone writes the
project's atomic checkpoints. A worker group that fails (a worker killed mid-epoch) is started
again, up to ``max_failures`` times, and resumes from the last checkpoint. When the workers are
done, the driver restores the final checkpoint into its own network with an ordinary ``fit``
(which trains no further epoch), so the run registers one version exactly as a one-process run.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from modelyard import fast_paths
from modelyard.errors import SpecError, TrainingError, optional_dependency
from modelyard.spec import DistributedSpec, TrainSpec
from modelyard.training.checkpoint import load_checkpoint
from modelyard.training.runtime import available_cores

__all__ = ["fit_distributed", "in_group", "shard", "all_sum", "gather_rows", "backend_for"]

log = logging.getLogger(__name__)


def in_group() -> bool:
    """True inside an initialised process group (a DDP worker)."""
    return dist.is_available() and dist.is_initialized()


def shard() -> tuple[int, int]:
    """(rank, workers) of this process: (0, 1) outside a process group."""
    if in_group():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """``values`` summed over the workers (unchanged outside a process group)."""
    if shard()[1] == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Every worker's rows of ``t``, concatenated in rank order (shards may differ in length)."""
    if shard()[1] == 1:
        return t
    size = torch.tensor([t.shape[0]], device=t.device)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes, strict=True)])


def backend_for(spec: DistributedSpec, device: str) -> str:
    if spec.backend != "auto":
        return spec.backend
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    return "nccl" if cuda else "gloo"


@dataclass
class _Job:
    """What every worker trains: sent to the workers (Ray's object store, or spawn's pickling)."""

    network: torch.nn.Module
    prepared: Any
    spec: TrainSpec
    seed: int
    folder: Path
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if isinstance(v, int | float)}


def _train_worker(job: _Job, report: Callable[[int, dict[str, Any]], None] | None = None) -> None:
    from modelyard.training.loop import fit  # the loop imports this module

    # Always resume: a fresh run's folder is empty, and a replaced worker group continues from it.
    fit(
        job.network,
        job.prepared,
        job.spec,
        seed=job.seed,
        checkpoint_dir=job.folder,
        resume=True,
        progress=False,
        loss_fn=job.loss_fn,
        on_epoch_end=report,
    )


def _ray_loop(config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    job: _Job = config["job"]
    if torch.cuda.is_available() and job.spec.device != "cpu":
        torch.cuda.set_device(ray.train.torch.get_device())
    _train_worker(job, lambda epoch, row: ray.train.report(_numbers(row)))


def _run_ray(job: _Job, spec: DistributedSpec) -> None:
    with optional_dependency("ray", "train.distributed with engine ray"):
        import ray
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchConfig, TorchTrainer
    if not ray.is_initialized():  # RAY_ADDRESS set: join that cluster; otherwise start one on this machine
        address = os.environ.get("RAY_ADDRESS")
        ray.init(
            address=address,
            num_cpus=None if address else max(available_cores(), spec.workers * spec.cpus_per_worker),
            include_dashboard=False,
        )
    backend = backend_for(spec, job.spec.device)
    trainer = TorchTrainer(
        _ray_loop,
        train_loop_config={"job": job},
        torch_config=TorchConfig(backend=backend),
        scaling_config=ScalingConfig(
            num_workers=spec.workers, use_gpu=backend == "nccl", resources_per_worker={"CPU": spec.cpus_per_worker}
        ),
        run_config=RunConfig(
            name=f"modelyard-{job.folder.parent.name}",
            storage_path=str(job.folder.parent / "ray"),
            failure_config=FailureConfig(max_failures=spec.max_failures),
        ),
    )
    try:
        result = trainer.fit()
    except Exception as exc:  # noqa: BLE001 - Ray's failure types differ between its Train APIs
        raise TrainingError(
            f"Distributed training failed after {spec.max_failures} restarts: {_first_line(exc)}"
        ) from None
    if getattr(result, "error", None) is not None:
        raise TrainingError(
            f"Distributed training failed after {spec.max_failures} restarts: {_first_line(result.error)}"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _local_entry(rank: int, workers: int, port: int, backend: str, threads: int, job: _Job) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    if backend == "nccl":
        torch.cuda.set_device(rank % torch.cuda.device_count())
    dist.init_process_group(backend, rank=rank, world_size=workers)
    # torch.multiprocessing hands tensors to spawned processes in shared memory: every worker's
    # network would be one set of weights, stepped by each worker's optimizer in turn. A private
    # copy per worker (the data stay shared: the loop only reads them).
    job = dataclasses.replace(job, network=copy.deepcopy(job.network))
    try:
        _train_worker(job)
    finally:
        dist.destroy_process_group()


def _run_local(job: _Job, spec: DistributedSpec) -> None:
    ctx = torch.multiprocessing.get_context("spawn")
    backend = backend_for(spec, job.spec.device)
    for attempt in range(spec.max_failures + 1):
        args = (spec.workers, _free_port(), backend, spec.cpus_per_worker, job)
        procs = [ctx.Process(target=_local_entry, args=(rank, *args), daemon=True) for rank in range(spec.workers)]
        for p in procs:
            p.start()
        failed = None
        while failed is None and any(p.is_alive() for p in procs):
            failed = next((p for p in procs if p.exitcode not in (None, 0)), None)
            time.sleep(0.05)
        failed = failed or next((p for p in procs if p.exitcode != 0), None)
        for p in procs:  # the survivors of a failed group wait in a collective: end them
            if p.is_alive():
                p.kill()
            p.join()
        if failed is None:
            return
        log.warning(
            "worker %d exited with %s (attempt %d); restarting from the last checkpoint",
            procs.index(failed),
            failed.exitcode,
            attempt + 1,
        )
    raise TrainingError(
        f"Distributed training failed: a worker exited with {failed.exitcode} after {spec.max_failures} restarts"
    )


def fit_distributed(
    network: torch.nn.Module,
    prepared: Any,
    train_spec: TrainSpec,
    *,
    seed: int,
    checkpoint_dir: Path | str | None,
    resume: bool,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None,
    progress: bool,
    console: Any,
) -> Any:
    """Train on ``train_spec.distributed.workers`` workers, then restore the result here (``fit``'s contract)."""
    from modelyard.training.batches import is_tensor_split
    from modelyard.training.loop import FitResult, fit

    spec = train_spec.distributed
    assert spec is not None
    if checkpoint_dir is None:
        raise SpecError(
            "Invalid value for `train.distributed`: the workers need a checkpoint folder", field="train.distributed"
        )
    if not is_tensor_split(prepared.train):
        raise SpecError(
            "Invalid value for `train.distributed`: expected in-memory training data (tensors) to shard across "
            f"workers, received a streamed {type(prepared.train).__name__}; train on one process",
            field="train.distributed",
        )
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    before = load_checkpoint(folder) if resume else None
    logged = before.epoch if before is not None else 0
    job = _Job(network.cpu(), prepared, train_spec, seed, folder, loss_fn)
    started = time.perf_counter()
    (_run_ray if spec.engine == "ray" else _run_local)(job, spec)
    train_time = time.perf_counter() - started
    ckpt = load_checkpoint(folder)
    if ckpt is None:
        raise TrainingError(f"Distributed training ended without a checkpoint in {folder}")
    for row in ckpt.history[logged:]:  # the run's epoch log, after the fact (workers run elsewhere)
        if on_epoch_end is not None:
            on_epoch_end(int(row["epoch"]), row)
    # Restore the final checkpoint into this process's network: every epoch is done, so no step runs.
    local = train_spec.model_copy(update={"distributed": None})
    with fast_paths.disabled():
        result: FitResult = fit(network, prepared, local, seed=seed, checkpoint_dir=folder, resume=True, progress=False)
    result.runtime = dict(ckpt.extra.get("runtime", result.runtime))
    result.train_time_s = train_time
    return result
