"""A served model's bounded, sampled request log: what ``monitor`` compares with the training reference.

The request path only draws the sampling coin and appends ``(id, time, features, outputs,
latency)`` to a bounded deque (no copy, no reduction, no I/O); ``flush``, called by the
monitor's background task, reduces the features (``monitoring.reference.reduce_features``) into
the ring of the last ``capacity`` instances. Labels sent back through the feedback route are
kept by request id, just as bounded.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard.errors import InvalidInstancesError, NotFoundError

__all__ = ["RequestLog", "LoggedRow"]


@dataclass(frozen=True)
class LoggedRow:
    """One instance of a logged request."""

    request_id: str
    index: int  # position in its request
    time: float
    features: np.ndarray  # reduced, [d]
    outputs: np.ndarray  # [k]
    latency_s: float


class RequestLog:
    """Bounded to ``capacity`` instances; a request is logged with probability ``sample``."""

    def __init__(self, capacity: int, sample: float, *, seed: int | None = None) -> None:
        self.capacity = capacity
        self.sample = sample
        self._pending: deque[tuple[str, float, Any, np.ndarray, float]] = deque(maxlen=capacity)
        self.rows: deque[LoggedRow] = deque(maxlen=capacity)
        self._labels: OrderedDict[str, list[Any]] = OrderedDict()
        self._sizes: OrderedDict[str, int] = OrderedDict()  # request id -> instances, for the feedback check
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
        self._pending.append((request_id, time.time(), features, outputs, latency_s))
        return request_id

    # -- off the request path ----------------------------------------------------------------
    def flush(self) -> int:
        """Reduce what the request path appended into the ring; returns the instances moved."""
        with self._flushing:  # the monitor's thread and a report's thread may both flush
            return self._flush()

    def _flush(self) -> int:
        pending = [self._pending.popleft() for _ in range(len(self._pending))]
        if not pending:
            return 0
        import torch

        from modelyard.monitoring.reference import reduce_features

        # One reduction for all of them (per request it cost ~35 us, batched ~20 us, most of it in torch
        # ops that release the GIL: the monitor flushes in a thread). Requests to one model share a shape.
        stacked = torch.cat([torch.as_tensor(features).reshape(len(features), -1) for _, _, features, _, _ in pending])
        reduced = reduce_features(stacked).numpy()
        start = 0
        for request_id, when, features, outputs, latency in pending:
            size = len(features)
            outs = np.asarray(outputs, dtype=np.float32).reshape(size, -1)
            for i in range(size):
                self.rows.append(LoggedRow(request_id, i, when, reduced[start + i], outs[i], latency))
            self._remember(self._sizes, request_id, size)
            start += size
        self.logged += start
        return start

    def _remember(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        while len(table) > self.capacity:
            table.popitem(last=False)

    def feedback(self, request_id: Any, labels: Any) -> int:
        """Record the true labels of one logged request (one per instance); returns how many."""
        self.flush()
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
                f"Invalid value for `labels`: expected a list of {size} labels (one per instance of the request), "
                f"received {got}",
                field="labels",
            )
        self._remember(self._labels, request_id, labels)
        return size

    def window(self, size: int) -> list[LoggedRow]:
        """The last ``size`` logged instances; a clear error when fewer were logged."""
        self.flush()
        if size > len(self.rows):
            raise InvalidInstancesError(
                f"Invalid value for `window`: expected at most the {len(self.rows)} instances in the request log "
                f"(it keeps {self.capacity}), received {size}",
                field="window",
            )
        return list(itertools.islice(self.rows, len(self.rows) - size, None))

    def label(self, row: LoggedRow) -> Any | None:
        labels = self._labels.get(row.request_id)
        return None if labels is None else labels[row.index]
