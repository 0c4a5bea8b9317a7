"""Client updates as flat vectors: what client-level DP clips and secure aggregation masks.

An update is a client's weights minus the round's global weights over the floating-point
entries of the state dict (parameters and float buffers such as batch norm's running
statistics), concatenated in state-dict order as one float64 vector of ``size`` numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Layout", "clip"]

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Layout:
    """Where each floating-point entry of a state dict lies in the flat update vector."""

    entries: tuple[tuple[str, tuple[int, ...], torch.dtype], ...]

    @classmethod
    def of(cls, state: State) -> Layout:
        return cls(tuple((k, tuple(v.shape), v.dtype) for k, v in state.items() if v.is_floating_point()))

    @property
    def size(self) -> int:
        return sum(int(np.prod(shape, dtype=np.int64)) for _, shape, _ in self.entries)

    def update(self, new: State, old: State) -> np.ndarray:
        """``new - old`` over the float entries, shape ``(size,)``, float64."""
        parts = [(new[k].to(torch.float64) - old[k].to(torch.float64)).reshape(-1) for k, _, _ in self.entries]
        return torch.cat(parts).numpy() if parts else np.zeros(0)

    def apply(self, base: State, update: np.ndarray) -> State:
        """``base + update`` (float entries); other entries (integer buffers) stay as ``base`` has them."""
        out = dict(base)
        offset = 0
        flat = torch.from_numpy(np.ascontiguousarray(update, dtype=np.float64))
        for key, shape, dtype in self.entries:
            n = int(np.prod(shape, dtype=np.int64))
            out[key] = (base[key].to(torch.float64) + flat[offset : offset + n].reshape(shape)).to(dtype)
            offset += n
        return out


def clip(update: np.ndarray, max_norm: float) -> np.ndarray:
    """``update`` scaled down to L2 norm ``max_norm`` when longer (McMahan et al. 2018, ClipFn)."""
    norm = float(np.linalg.norm(update))
    return update if norm <= max_norm else update * (max_norm / norm)
