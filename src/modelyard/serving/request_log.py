"""A served model's bounded, sampled request log: what ``monitor`` compares with the training reference.

The request path only draws the sampling coin and appends ``(id, features, outputs, latency)``
to a bounded deque (no copy, no reduction, no I/O); ``flush``, called by the
monitor's background task, reduces the features (``monitoring.reference.reduce_features``) of
all pending requests at once and keeps them as one block of arrays (features, outputs, request
ids, latencies), the last ``capacity`` instances in all. No Python object per request or
instance: at 2,000+ requests/s under a single event loop every microsecond the flush holds the
GIL is taken from the request path (an object per logged row cost about as much as the reduction
itself). ``window`` joins the last blocks into the arrays a check reads. Labels sent back through the feedback route are kept
by request id, just as bounded.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.errors import InvalidInstancesError, NotFoundError

__all__ = ["RequestLog", "Window"]


@dataclass(frozen=True)
class _Block:
    """The requests of one flush, instance by instance: reduced features ``[n, d]``, outputs ``[n, k]``."""

    features: np.ndarray
    outputs: np.ndarray
    request_ids: np.ndarray  # [n] object: each instance's request id
    indexes: np.ndarray  # [n] each instance's position in its request
    latency_s: np.ndarray  # [n] each instance's request latency
    requests: list[str]  # the ids of the block's requests, once each

    def __len__(self) -> int:
        return len(self.features)


@dataclass(frozen=True)
class Window:
    """The last ``size`` logged instances, oldest first, as arrays (what a check reads)."""

    features: np.ndarray  # [size, d] reduced
    outputs: np.ndarray  # [size, k]
    latency_s: np.ndarray  # [size], each instance its request's latency
    request_ids: list[str]  # [size], each instance its request's id
    indexes: np.ndarray  # [size], each instance's position in its request

    def __len__(self) -> int:
        return len(self.request_ids)


class RequestLog:
    """Bounded to ``capacity`` instances; a request is logged with probability ``sample``."""

    def __init__(self, capacity: int, sample: float, *, seed: int | None = None) -> None:
        self.capacity = capacity
        self.sample = sample
        self._pending: deque[tuple[str, Any, np.ndarray, float]] = deque(maxlen=capacity)
        self._blocks: deque[_Block] = deque()
        self.instances = 0  # instances in the blocks kept (at most ``capacity``)
        self._labels: dict[str, list[Any]] = {}
        self._sizes: dict[str, int] = {}  # request id -> instances (of the kept blocks), for the feedback check
        self._random = random.Random(seed)
        self._ids = itertools.count(1)
        self._prefix = f"{os.getpid():x}-{int(time.time()):x}-"
        self.logged = 0  # instances ever logged (rows evicted from the ring included)
        self._flushing = threading.Lock()

    # -- the request path --------------------------------------------------------------------
    def sampled(self) -> bool:
        return self.sample >= 1.0 or self._random.random() < self.sample

    def record(self, features: Any, outputs: np.ndarray, latency_s: float) -> str:
        request_id = f"{self._prefix}{next(self._ids)}"
        self._pending.append((request_id, features, outputs, latency_s))
        return request_id

    # -- off the request path ----------------------------------------------------------------
    def flush(self) -> int:
        """Reduce what the request path appended into blocks; returns the instances moved."""
        with self._flushing:  # the monitor's thread and a report's thread may both flush
            return self._flush()

    def _flush(self) -> int:
        pending = [self._pending.popleft() for _ in range(len(self._pending))]
        if not pending:
            return 0
        import torch

        from modelyard.monitoring.reference import reduce_features

        # One concatenation and one reduction for all of them: requests to one model share the
        # instance shape, so torch.cat takes the request tensors as they are.
        ids, inputs, outputs, latencies = zip(*pending, strict=True)
        tensors = [torch.as_tensor(features) for features in inputs]
        sizes = np.fromiter((t.shape[0] for t in tensors), dtype=np.int64, count=len(tensors))  # not len(): ~5 us
        reduced = reduce_features(torch.cat(tensors)).numpy()
        total = int(sizes.sum())
        starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
        block = _Block(
            features=reduced,
            outputs=np.concatenate([np.asarray(o, dtype=np.float32).reshape(n, -1) for o, n in zip(outputs, sizes)]),
            request_ids=np.repeat(np.array(ids, dtype=object), sizes),
            indexes=np.arange(total) - starts,
            latency_s=np.repeat(np.array(latencies, dtype=np.float64), sizes),
            requests=list(ids),
        )
        self._blocks.append(block)
        self._sizes.update(zip(ids, sizes.tolist()))
        self.instances += total
        while self._blocks and self.instances - len(self._blocks[0]) >= self.capacity:
            gone = self._blocks.popleft()  # the oldest, while the rest still fill the capacity
            self.instances -= len(gone)
            for request_id in gone.requests:
                self._sizes.pop(request_id, None)
                self._labels.pop(request_id, None)
        self.logged += total
        return total

    def kept(self) -> int:
        """Instances a window can draw on: the last ``capacity`` logged (fewer until that many were)."""
        return min(self.instances, self.capacity)

    def feedback(self, request_id: Any, labels: Any) -> int:
        """Record the true labels of one logged request (one per instance); returns how many."""
        with self._flushing:  # checked and stored while no flush evicts the request's block
            self._flush()
            if not isinstance(request_id, str) or request_id not in self._sizes:
                raise NotFoundError(
                    f"Invalid value for `request_id`: expected the request_id of a logged prediction (the "
                    f"last {self.capacity} instances), received {request_id!r}",
                    field="request_id",
                )
            size = self._sizes[request_id]
            if not isinstance(labels, list) or len(labels) != size:
                got = f"{len(labels)} labels" if isinstance(labels, list) else type(labels).__name__
                raise InvalidInstancesError(
                    f"Invalid value for `labels`: expected a list of {size} labels (one per instance of the "
                    f"request), received {got}",
                    field="labels",
                )
            self._labels[request_id] = labels  # dropped with its request's block
            return size

    def window(self, size: int) -> Window:
        """The last ``size`` logged instances; a clear error when fewer were logged."""
        with self._flushing:  # the monitor's thread may flush (append, evict) while a route reads
            self._flush()
            kept = self.kept()
            if size > kept:
                raise InvalidInstancesError(
                    f"Invalid value for `window`: expected at most the {kept} instances in the request log "
                    f"(it keeps {self.capacity}), received {size}",
                    field="window",
                )
            blocks: list[_Block] = []
            count = 0
            for block in reversed(self._blocks):
                if count >= size:
                    break
                blocks.append(block)
                count += len(block)
        blocks.reverse()
        cut = count - size  # the oldest block may reach back past the window

        def joined(field: str) -> np.ndarray:
            return np.concatenate([getattr(b, field) for b in blocks])[cut:]

        return Window(
            features=joined("features"),
            outputs=joined("outputs"),
            latency_s=joined("latency_s"),
            request_ids=joined("request_ids").tolist(),
            indexes=joined("indexes"),
        )

    def labels(self, window: Window) -> list[Any | None]:
        """Each instance's label sent back through the feedback route, None where none came."""
        out: list[Any | None] = []
        for request_id, index in zip(window.request_ids, window.indexes.tolist(), strict=True):
            labels = self._labels.get(request_id)
            out.append(None if labels is None else labels[index])
        return out
