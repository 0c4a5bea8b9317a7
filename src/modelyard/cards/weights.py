"""What a version's weights file holds, from its safetensors header alone (no torch, no tensor data read).

A safetensors file starts with an 8-byte little-endian header length and a JSON header that
names every tensor with its dtype and shape (https://github.com/huggingface/safetensors,
"Format"). That is enough to count a float model's parameters: its state dict is its
parameters plus the running statistics of batch norms, the only buffers the layer
registry's modules keep. An int8 version's tensors are an encoding (integer values, scales,
zero points) whose parameter count was measured when it was made and is in its lineage.
"""

from __future__ import annotations

import json
import math
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WeightsSummary", "read_weights"]

_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors refuses larger headers too
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")  # BatchNorm{1,2,3}d


@dataclass(frozen=True)
class WeightsSummary:
    """Tensors by name → (dtype, element count), and their bytes on disk."""

    tensors: dict[str, tuple[str, int]]
    file_bytes: int

    @property
    def float_parameters(self) -> int:
        """Parameters of a float state dict: every tensor except batch-norm running statistics."""
        return sum(n for name, (_, n) in self.tensors.items() if name.rsplit(".", 1)[-1] not in _BUFFERS)

    @property
    def dtypes(self) -> dict[str, int]:
        """Element count per dtype (``F32``, ``I8``, ...), largest first."""
        counts: Counter[str] = Counter()
        for dtype, n in self.tensors.values():
            counts[dtype] += n
        return dict(counts.most_common())


def read_weights(path: Path) -> WeightsSummary | None:
    """The header of the safetensors file at ``path``; None when it is missing or not safetensors."""
    try:
        with path.open("rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                return None
            (size,) = struct.unpack("<Q", raw)
            if size > _HEADER_LIMIT:
                return None
            header = json.loads(f.read(size).decode("utf-8"))
        tensors = {
            name: (str(entry["dtype"]), math.prod(int(d) for d in entry["shape"]))
            for name, entry in header.items()
            if name != "__metadata__"
        }
        return WeightsSummary(tensors, path.stat().st_size)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
