"""Data-parallel training throughput: 1 vs 2 workers (Ray and local engines) against one process, side by side.

    python benchmarks/train_distributed_bench.py               # 3 rounds x 3 epochs, full Fashion-MNIST
    python benchmarks/train_distributed_bench.py --rounds 1 --epochs 2 --samples 20000

The seed MLP (examples/fashion_mlp.yaml, fp32, Adam lr 1e-3) at the same global batch of 128
everywhere: one process trains batches of 128, N workers batches of 128 / N each. Every worker
runs one intra-op thread (``cpus_per_worker: 1``). Runs, each in a fresh interpreter:

- ``one process, fast path``: what ``modelyard train`` does, capped at 1 thread, and at 2 threads;
- ``one process, autograd``: the same with every fast path off, 1 thread: a DDP worker's step
  without the all-reduce (DDP steps through autograd hooks, so the fast paths are off there);
- ``ray`` / ``local`` with 1 and 2 workers (``train.distributed``). With 1 worker ``build_run``
  builds no DDP wrapper, so the worker takes the fast path: that run shows the start-up alone.

Each run's time is split: ``init`` (``ray.init``, timed here before ``fit``), ``outside epochs``
(the workers' start, the data sent to each worker, the process group, rank 0's checkpoint
writes, the driver restoring the last checkpoint) and the epochs (``time_s`` of each epoch in
the history, measured inside rank 0). ``all-reduce`` is a gloo all-reduce of the MLP's gradient
(one DDP bucket: 235,146 fp32 values) between two spawned processes, timed alone, so the
per-epoch cost of DDP's communication is a number and not a guess. Rounds run every
configuration once, in the same order, and each configuration's median round is reported, so a
slow stretch of the shared host hits all of them alike. Writes
benchmarks/results/train_distributed_bench.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
SPEC = HERE.parent / "examples" / "fashion_mlp.yaml"
GLOBAL_BATCH = 128
# name -> (label, engine or None, workers, threads, fast paths on, samples per step on one worker)
CONFIGS: dict[str, tuple[str, str | None, int, int, bool, int]] = {
    "one-fast-1t": ("one process, fast path, 1 thread", None, 1, 1, True, 128),
    "one-fast-2t": ("one process, fast path, up to 2 threads", None, 1, 2, True, 128),
    "one-autograd-1t": ("one process, autograd (fast paths off), 1 thread", None, 1, 1, False, 128),
    # A DDP worker's compute per step (its 64 of the 128): the same step without any all-reduce.
    "one-autograd-1t-64": ("one process, autograd, 1 thread, batch 64", None, 1, 1, False, 64),
    "ray-1": ("Ray, 1 worker", "ray", 1, 1, True, 128),
    "ray-2": ("Ray, 2 workers (DDP)", "ray", 2, 1, True, 64),
    "local-1": ("local, 1 worker", "local", 1, 1, True, 128),
    "local-2": ("local, 2 workers (DDP)", "local", 2, 1, True, 64),
}


def train_run(name: str, *, epochs: int, samples: int | None) -> dict[str, Any]:
    """One configuration's ``fit`` in this (fresh) process: its time split and per-epoch throughput."""
    import dataclasses

    from modelyard import fast_paths
    from modelyard.spec import load_spec
    from modelyard.training import fit, setup
    from modelyard.training.fast.allocator import keep_freed_memory
    from modelyard.workflow import build_checked

    label, engine, workers, threads, fast, per_step = CONFIGS[name]
    keep_freed_memory()  # what the `modelyard train` entry point chooses for its process
    overrides = [
        "data.validation=0",
        "train.metrics=[accuracy]",
        "train.precision=fp32",
        f"train.epochs={epochs}",
        f"train.batch_size={per_step}",
    ]
    if engine is not None:
        overrides.append(f"train.distributed={{workers: {workers}, engine: {engine}, cpus_per_worker: {threads}}}")
    spec = load_spec(SPEC, overrides)
    network, prepared = build_checked(spec)
    if samples is not None:
        train = dataclasses.replace(prepared.train, x=prepared.train.x[:samples], y=prepared.train.y[:samples])
        prepared = dataclasses.replace(prepared, train=train)
    if engine is None:
        # The thread cap of a machine with `threads` cores (what taskset would show), without pinning
        # the process to one core that another session's job may be using.
        setup.available_cores = lambda: threads  # type: ignore[attr-defined]
    init_s = 0.0
    if engine == "ray":
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=max(os.cpu_count() or 1, workers), include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as folder:
        t0 = time.perf_counter()
        if fast:
            result = fit(network, prepared, spec.train, seed=spec.seed, checkpoint_dir=folder, progress=False)
        else:
            with fast_paths.disabled():
                result = fit(network, prepared, spec.train, seed=spec.seed, checkpoint_dir=folder, progress=False)
        fit_s = time.perf_counter() - t0
    epoch_s = [float(row["time_s"]) for row in result.history]
    steps = -(-len(prepared.train) // (per_step * workers))
    return {
        "name": name,
        "label": label,
        "threads": result.runtime["threads"],
        "step": result.runtime["step"],
        "init_s": init_s,
        "fit_s": fit_s,
        "epoch_s": epoch_s,
        "outside_s": fit_s - sum(epoch_s),
        "samples_per_s": statistics.median(float(row["samples_per_s"]) for row in result.history),
        "end_to_end_per_s": len(prepared.train) * epochs / (init_s + fit_s),
        "loss": float(result.history[-1]["loss"]),
        "steps_per_epoch": steps,
        "step_ms": 1000 * statistics.median(epoch_s) / steps,
        # What is sent to every worker: the prepared training tensors (Ray's object store, spawn's pickling).
        "data_mb": (prepared.train.x.nbytes + prepared.train.y.nbytes) / 2**20,
    }


def _allreduce_entry(rank: int, port: int, numel: int, repeats: int, out: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    grad = torch.randn(numel)
    for _ in range(10):  # warm-up: connections, buffers
        dist.all_reduce(grad)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(repeats):
        dist.all_reduce(grad)
    seconds = (time.perf_counter() - t0) / repeats
    if rank == 0:
        Path(out).write_text(json.dumps({"allreduce_ms": 1000 * seconds}))
    dist.destroy_process_group()


def allreduce_run(repeats: int = 300) -> dict[str, Any]:
    """Seconds of one gloo all-reduce of the MLP's gradient between two local processes."""
    import socket

    numel = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "allreduce.json")
        torch.multiprocessing.spawn(_allreduce_entry, args=(port, numel, repeats, out), nprocs=2)
        return {"name": "allreduce", "numel": numel, **json.loads(Path(out).read_text())}


def run_fresh(name: str, *, epochs: int, samples: int | None) -> dict[str, Any]:
    """``train_run`` (or the all-reduce) in a fresh interpreter; an error record if it fails."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--epochs", str(epochs)]
    if samples is not None:
        cmd += ["--samples", str(samples)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=1800, check=False, env={**os.environ, "PYTHONWARNINGS": "ignore"}
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"name": name, "error": tail[:200]}
    return json.loads(lines[-1])


def load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[-1]
    ok.sort(key=lambda r: r["samples_per_s"])
    row = dict(ok[len(ok) // 2])
    row["rounds"] = [r["samples_per_s"] for r in ok]
    return row


def markdown(
    rows: list[dict[str, Any]], allreduce: list[dict[str, Any]], args: argparse.Namespace, loads: list[str]
) -> str:
    n = args.samples or 60000
    ref = next((r for r in rows if r["name"] == "one-fast-1t" and "error" not in r), rows[0])
    lines = [
        "# Data-parallel training throughput (benchmarks/train_distributed_bench.py)",
        "",
        f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} cores, {_cpu_model()}), "
        f"torch {torch.__version__}; load average (1/5/15 min) before each round: {'; '.join(loads)}. "
        f"Seed MLP on Fashion-MNIST, {n} training images, {args.epochs} epochs per run, global batch {GLOBAL_BATCH}, "
        f"fp32, Adam lr 1e-3; {args.rounds} rounds, each configuration's median round shown (samples/s of every "
        "round beside it). samples/s: the median epoch's training throughput (inside rank 0); end to end: "
        "samples trained over the whole run (ray.init + fit).",
        "",
        "| configuration | threads/worker | step | samples/s (median epoch) | rounds | ÷ one process 1 thread | "
        "ms per step | end to end samples/s | init s | outside epochs s | epochs s | last loss |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {CONFIGS[r['name']][0]} | | | not run: {r['error']} | | | | | | | | |")
            continue
        spread = " / ".join(f"{v / 1000:.1f}k" for v in r["rounds"])
        lines.append(
            f"| {r['label']} | {r['threads']} | {r['step']} | {r['samples_per_s']:,.0f} | {spread} | "
            f"{r['samples_per_s'] / ref['samples_per_s']:.2f}x | {r['step_ms']:.2f} | {r['end_to_end_per_s']:,.0f} | {r['init_s']:.1f} | "
            f"{r['outside_s']:.1f} | {sum(r['epoch_s']):.1f} | {r['loss']:.4f} |"
        )
    ms = [a["allreduce_ms"] for a in allreduce if "error" not in a]
    if ms:
        steps = ref["steps_per_epoch"]
        med = statistics.median(ms)
        lines += [
            "",
            f"gloo all-reduce of the MLP's gradient ({allreduce[0]['numel']:,} fp32 values, one DDP bucket) between "
            f"two local processes, 1 thread each: {med:.2f} ms per step (rounds: {' / '.join(f'{m:.2f}' for m in ms)}), "
            f"x {steps} steps = {med * steps / 1000:.2f} s per epoch of {n} images.",
        ]
    lines += ["", f"Training tensors sent to every worker: {ref.get('data_mb', 0):.0f} MiB."]
    return "\n".join(lines) + "\n"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--samples", type=int, default=None, help="training images (default: all 60000)")
    p.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="run these configurations only")
    p.add_argument("--out", type=Path, default=HERE / "results" / "train_distributed_bench.md")
    p.add_argument("--worker", choices=[*CONFIGS, "allreduce"], help=argparse.SUPPRESS)  # internal: one run, JSON out
    args = p.parse_args()
    if args.worker == "allreduce":
        print(json.dumps(allreduce_run()))
        return
    if args.worker:
        print(json.dumps(train_run(args.worker, epochs=args.epochs, samples=args.samples)))
        return
    names = args.only or list(CONFIGS)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    allreduce: list[dict[str, Any]] = []
    loads: list[str] = []
    for r in range(args.rounds):
        loads.append(load())
        for name in names:
            runs[name].append(run_fresh(name, epochs=args.epochs, samples=args.samples))
        allreduce.append(run_fresh("allreduce", epochs=args.epochs, samples=None))
        print(
            f"[round {r + 1}/{args.rounds}, load {loads[-1]}] "
            + ", ".join(f"{n}: {v[-1].get('samples_per_s', 0):,.0f}" for n, v in runs.items())
            + f", allreduce: {allreduce[-1].get('allreduce_ms', float('nan')):.2f} ms",
            flush=True,
        )
    text = markdown([median_run(v) for v in runs.values()], allreduce, args, loads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
