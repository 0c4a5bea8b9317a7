"""What a run records about where it ran, and device/thread selection shared by train and predict."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

import torch

__all__ = ["environment", "resolve_device", "available_cores"]

_PACKAGES = ("torch", "numpy", "pydantic", "torchmetrics", "scikit-learn", "safetensors", "sqlalchemy")


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA if present, then Apple MPS, else CPU; explicit names are checked."""
    from modelyard.errors import SpecError

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(
            f"Invalid value for `train.device`: {name!r} was asked for but no CUDA GPU is available; use 'auto' or 'cpu'",
            field="train.device",
        )
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SpecError(
            "Invalid value for `train.device`: 'mps' was asked for but Apple MPS is not available; use 'auto' or 'cpu'",
            field="train.device",
        )
    return torch.device(name)


def environment(seed: int | None = None, device: str | None = None) -> dict[str, Any]:
    """Versions and machine facts stored with every run, for reproducing it later."""
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    from modelyard import __version__

    return {
        "modelyard": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cores": available_cores(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "packages": versions,
        "seed": seed,
        "device": device,
    }
