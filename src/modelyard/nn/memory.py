"""Does a network fit in memory? Checked from the spec's parameter count, before any weight exists.

``build_model`` first builds every layer on PyTorch's ``meta`` device (shapes and parameter
counts, no storage), so a layer whose weights would need tens of GB is refused with one line
naming it instead of growing the process until the kernel kills it. Training needs more than
the weights: their gradients and the optimizer's state (Adam: two moments), so
``check_training_memory`` asks for four times the weights' bytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from modelyard.errors import ResourceError

__all__ = ["available_bytes", "check_fits", "check_training_memory", "TRAINING_COPIES"]

TRAINING_COPIES = 4  # weights + gradients + Adam's two moments, each as large as the weights


def available_bytes() -> int | None:
    """Memory the process can still get without swapping (Linux ``MemAvailable``), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check_fits(
    layers: Sequence[tuple[str, int, int]], *, copies: int = 1, what: str = "its weights", available: int | None = None
) -> None:
    """``layers``: (field, parameter count, bytes per parameter). Raise ResourceError if they do not fit."""
    available = available_bytes() if available is None else available
    need = sum(count * size for _, count, size in layers) * copies
    if available is None or need <= available:
        return
    field, count, _ = max(layers, key=lambda layer: layer[1] * layer[2])
    raise ResourceError(
        f"Invalid value for `{field}`: the model needs {_gb(need)} for {what} "
        f"({sum(c for _, c, _ in layers):,} parameters, {count:,} of them in this layer) but this machine has "
        f"{_gb(available)} available; make the layer smaller or its input smaller (e.g. pool before it)",
        field=field,
    )


def check_training_memory(layers: Sequence[tuple[str, int, int]], *, available: int | None = None) -> None:
    check_fits(
        layers, copies=TRAINING_COPIES, what="training (weights, gradients, optimizer state)", available=available
    )
