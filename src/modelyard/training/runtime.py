"""Hardware choices for the training loop: device, precision, threads, memory format.

Each choice is a small pure function of the spec and what the machine offers, so the loop
reads as "what to do" and ``FitResult.runtime`` can report exactly what ran.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from modelyard.errors import SpecError

__all__ = [
    "Precision",
    "resolve_device",
    "resolve_precision",
    "worth_bf16_on_cpu",
    "cpu_has_bf16",
    "available_cores",
    "idle_cores",
    "wants_channels_last",
    "autocast",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Precision:
    """What the forward pass runs in: ``name`` fp32|bf16|fp16, autocast dtype, loss scaling."""

    name: Literal["fp32", "bf16", "fp16"]
    dtype: torch.dtype | None  # autocast dtype; None means plain fp32
    scaler: bool  # fp16 needs GradScaler against gradient underflow


FP32 = Precision("fp32", None, False)
BF16 = Precision("bf16", torch.bfloat16, False)
FP16 = Precision("fp16", torch.float16, True)


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda if available, then mps, else cpu; an explicit device must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecError(
                f"Invalid value for `train.device`: expected a device this machine has (cpu{', mps' if _has_mps() else ''}), "
                f"received {name!r}: no CUDA GPU is available; use device auto",
                field="train.device",
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SpecError(
                f"Invalid value for `train.device`: expected cuda:0..cuda:{torch.cuda.device_count() - 1}, received {name!r}",
                field="train.device",
            )
    if device.type == "mps" and not _has_mps():
        raise SpecError(
            f"Invalid value for `train.device`: expected a device this machine has, received {name!r}: "
            "MPS is not available; use device auto",
            field="train.device",
        )
    return device


def _has_mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


@lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU computes bf16 natively (AMX or AVX512-BF16), so autocast pays off."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return bool(flags & {"amx_bf16", "avx512_bf16"})
    # No /proc (macOS, Windows): ask oneDNN, which checks the same instructions.
    with contextlib.suppress(Exception):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


# Multiply-accumulates per step below which bf16 autocast costs more on a CPU than it
# saves: casting the weights every step dominates. Measured on an AVX512-BF16 Xeon
# (2 threads, Adam, dense nets): 64-32-10 at batch 512 (~1M) ran 0.6x as fast in bf16,
# 784-256-128-10 at batch 128 (~30M) 1.4x, 784-1024-1024-10 at batch 128 (~240M) 2.3x,
# and a 2-conv Fashion-MNIST net 2.5x even at ~6M (convolutions reuse each weight a lot).
CPU_BF16_MIN_WORK = 1 << 24


def worth_bf16_on_cpu(network: nn.Module, batch_size: int) -> bool:
    """Enough matrix work per step for bf16 to beat fp32 on a CPU (see CPU_BF16_MIN_WORK)."""
    if any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d)) for m in network.modules()):
        return True
    weights = sum(p.numel() for p in network.parameters() if p.ndim > 1)
    return weights * batch_size >= CPU_BF16_MIN_WORK


def _running_tasks() -> int | None:
    """Runnable tasks on the machine now (Linux /proc/loadavg, this reader included), or None."""
    try:
        return int(Path("/proc/loadavg").read_text(encoding="ascii").split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def idle_cores(cores: int, samples: int = 5) -> int:
    """Of ``cores``, those no other process is running on at the start of a fit (at least 1).

    OpenMP threads that share a core with another busy process spin-wait for each other:
    on a 2-core machine beside one other busy job, 2 threads trained the seed MLP at 2.5k
    samples/s and 1 thread at 43k. The fewest runnable tasks over a few samples ~5 ms
    apart counts the other jobs, not our own threads still finishing the last op.
    """
    counts = []
    for i in range(samples):
        if i:
            time.sleep(0.005)
        n = _running_tasks()
        if n is None:
            return cores
        counts.append(n)
    others = max(0, min(counts) - 1)
    return max(1, min(cores, cores - others))


# Multiply-accumulates per step below which extra intra-op threads only add overhead: the
# ops are too small to split, and on a busy machine spinning OpenMP threads made a tiny
# net's epoch ~100x slower (digits MLP: 0.25 s alone, 32 s beside another 2-thread job).
CPU_THREADS_MIN_WORK = 1 << 20


def cpu_threads(network: nn.Module, batch_size: int, cores: int) -> int:
    """Intra-op threads for training on a CPU: every core for real work, one for tiny nets."""
    if any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in network.modules()):
        return cores
    weights = sum(p.numel() for p in network.parameters() if p.ndim > 1)
    return cores if weights * batch_size >= CPU_THREADS_MIN_WORK else 1


def resolve_precision(name: str, device: torch.device, *, heavy: bool = True) -> Precision:
    """``auto`` → bf16 where the hardware computes it, else fp32.

    bf16 hardware: CUDA GPUs with bf16, CPUs with AMX or AVX512-BF16. On a CPU ``auto``
    also needs ``heavy`` (``worth_bf16_on_cpu``): tiny networks train faster in fp32.
    fp16 needs loss scaling and only pays off on CUDA; asked for elsewhere it falls back
    to bf16 (or fp32), logged, and ``FitResult.runtime["precision"]`` says what ran.
    """
    if name == "fp32":
        return FP32
    if name == "bf16":
        return BF16
    if name == "fp16":
        if device.type == "cuda":
            return FP16
        fallback = BF16 if device.type == "cpu" and cpu_has_bf16() else FP32
        log.warning("precision fp16 needs a CUDA GPU; training on %s in %s instead", device.type, fallback.name)
        return fallback
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return BF16
    if device.type == "cpu" and cpu_has_bf16() and heavy:
        return BF16
    return FP32


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset/cgroups affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def wants_channels_last(network: nn.Module, sample_shape: tuple[int, ...]) -> bool:
    """Image batches [N, C, H, W] through conv layers run faster as NHWC (oneDNN, cuDNN)."""
    if len(sample_shape) != 3:
        return False
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in network.modules())


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    """The autocast context for one forward pass (a no-op in fp32)."""
    if precision.dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.dtype)
