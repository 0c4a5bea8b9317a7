"""Dynamic batching: concurrent requests are coalesced into one forward pass.

Requests arrive already validated and preprocessed (a bad one fails in its own handler,
before it can share a batch with anyone). The batcher collates their tensors with
``torch.cat``, remembering each request's row span, runs the model in one dedicated
worker thread (so the event loop keeps parsing the next requests while torch computes),
and hands each request back its own rows of the outputs (a tensor or a numpy array,
whichever ``run`` returns; the server's backends return numpy, ready to encode).

A batch starts as soon as ``max_batch_size`` rows are waiting, or ``max_wait_ms`` after
its oldest request arrived. The wait only applies under concurrency (recent batches held
more than one request on average): a lone client is answered at once instead of paying
the wait for company that never comes. Requests that arrive together are coalesced
without any wait, and while one batch runs the next one fills up.

Testable without a server: ``await DynamicBatcher(fn).submit(tensor)``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from modelyard.errors import QueueFullError, RequestTimeoutError, ShuttingDownError

__all__ = ["DynamicBatcher"]

log = logging.getLogger(__name__)

Outputs = torch.Tensor | np.ndarray  # row-sliceable, with a leading batch axis


@dataclass(eq=False)
class _Pending:
    features: torch.Tensor  # (rows, *input_shape)
    future: asyncio.Future[Outputs]
    arrived: float  # loop.time()
    deadline: float
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = int(self.features.shape[0])


class DynamicBatcher:
    """Queue + collate + one worker thread for one model.

    ``run`` maps a (B, ...) tensor to (B, ...) outputs; it is called from the worker
    thread only, one batch at a time. ``on_batch(rows, seconds)`` is called after each
    forward pass (metrics).
    """

    def __init__(
        self,
        run: Callable[[torch.Tensor], Outputs],
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        max_queue: int = 1024,
        timeout_s: float = 10.0,
        name: str = "model",
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._run = run
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.name = name
        self._on_batch = on_batch
        self._queue: deque[_Pending] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._batch_seconds = 0.01  # running estimate of one forward pass, for Retry-After
        self._requests_per_batch = 1.0  # running mean: above 1 means requests arrive concurrently

    # -- public ------------------------------------------------------------------------------
    @property
    def queue_depth(self) -> int:
        """Requests waiting for a batch (not counting the one being computed)."""
        return len(self._queue)

    async def submit(self, features: torch.Tensor) -> Outputs:
        """Queue ``features`` (rows of one request) and wait for their outputs."""
        if self._closing:
            raise ShuttingDownError(
                f"Model {self.name} is shutting down and takes no new requests; retry on another replica"
            )
        if len(self._queue) >= self.max_queue:
            raise QueueFullError(
                f"Model {self.name} is overloaded: {len(self._queue)} requests are queued (limit {self.max_queue}); retry later",
                retry_after=self._retry_after(),
            )
        self._ensure_started()
        loop = asyncio.get_running_loop()
        now = loop.time()
        item = _Pending(features, loop.create_future(), now, now + self.timeout_s)
        self._queue.append(item)
        assert self._wakeup is not None
        self._wakeup.set()
        try:
            async with asyncio.timeout(self.timeout_s):
                return await item.future
        except TimeoutError:
            raise RequestTimeoutError(
                f"Model {self.name} did not answer within the {self.timeout_s:g} s timeout (queue depth {len(self._queue)})"
            ) from None
        finally:
            if item.future.cancelled() or not item.future.done():  # timed out or the client left
                item.future.cancel()
                try:
                    self._queue.remove(item)
                except ValueError:
                    pass

    async def close(self, *, drain: bool = True) -> None:
        """Stop taking requests; with ``drain`` finish every queued one first."""
        self._closing = True
        if not drain:
            while self._queue:
                item = self._queue.popleft()
                if not item.future.done():
                    item.future.set_exception(ShuttingDownError(f"Model {self.name} shut down before this request ran"))
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def start(self, example: torch.Tensor | None = None) -> None:
        """(Re)open for requests; with ``example``, run one forward pass in the worker thread
        so first-call costs (allocation, kernel selection) happen before traffic."""
        self._closing = False
        self._ensure_started()
        if example is None:
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, self._run, example)

    # -- the loop ----------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._task is not None and not self._task.done():
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"modelyard-{self.name}")
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=f"batcher-{self.name}")

    async def _loop(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch: list[_Pending] = []
            try:
                await self._fill()
                batch = self._take()
                if batch:
                    await self._execute(batch)
            except Exception as exc:  # never let the loop die: fail this batch, keep serving
                log.exception("batcher %s failed", self.name)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)

    async def _fill(self) -> None:
        """Wait until a full batch is queued or the oldest request has waited max_wait.

        First one turn of the event loop: requests whose bytes arrived together are all
        ready to run, and each reaches ``submit`` before this task runs again. This
        coalesces them without a timer (libuv timers have a 1 ms resolution).
        """
        assert self._wakeup is not None
        await asyncio.sleep(0)
        if self._closing or not self._queue or self._requests_per_batch < 1.5:
            return
        loop = asyncio.get_running_loop()
        deadline = self._queue[0].arrived + self.max_wait_s
        while not self._closing and self._queued_rows() < self.max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                return
            if not self._queue:
                return

    def _queued_rows(self) -> int:
        rows = 0
        for item in self._queue:
            rows += item.rows
            if rows >= self.max_batch_size:
                break
        return rows

    def _take(self) -> list[_Pending]:
        """Pop requests for one batch: whole requests only, at most max_batch_size rows
        (a single larger request still runs, alone)."""
        now = asyncio.get_running_loop().time()
        batch: list[_Pending] = []
        rows = 0
        while self._queue:
            item = self._queue[0]
            if item.future.done():  # cancelled while waiting
                self._queue.popleft()
                continue
            if item.deadline <= now:
                self._queue.popleft()
                item.future.set_exception(
                    RequestTimeoutError(
                        f"Model {self.name} did not start this request within the {self.timeout_s:g} s timeout"
                    )
                )
                continue
            if batch and rows + item.rows > self.max_batch_size:
                break
            self._queue.popleft()
            batch.append(item)
            rows += item.rows
        return batch

    async def _execute(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        features = batch[0].features if len(batch) == 1 else torch.cat([item.features for item in batch])
        start = time.perf_counter()
        try:
            out = await loop.run_in_executor(self._executor, self._run_checked, features)
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            # The batch failed as a whole: run each request alone so only the culprit fails.
            log.warning("batch of %d requests failed on %s (%s); retrying them one by one", len(batch), self.name, exc)
            for item in batch:
                await self._execute([item])
            return
        seconds = time.perf_counter() - start
        self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * seconds
        self._requests_per_batch = 0.8 * self._requests_per_batch + 0.2 * len(batch)
        if self._on_batch is not None:
            self._on_batch(int(features.shape[0]), seconds)
        offset = 0
        for item in batch:
            if not item.future.done():
                item.future.set_result(out[offset : offset + item.rows])
            offset += item.rows

    def _run_checked(self, features: torch.Tensor) -> Outputs:
        out = self._run(features)
        if out.shape[0] != features.shape[0]:
            raise RuntimeError(f"model returned {out.shape[0]} rows for a batch of {features.shape[0]}")
        return out

    def _retry_after(self) -> int:
        """Seconds until the queue has likely drained: batches ahead x time per batch."""
        batches = len(self._queue) / max(1, self.max_batch_size) + 1
        return max(1, math.ceil(batches * self._batch_seconds))
