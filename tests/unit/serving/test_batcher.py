"""DynamicBatcher without a server: coalescing, limits, failures, draining.

The reference for every answer is the same function applied to each request alone.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
import torch

from modelyard.errors import QueueFullError, RequestTimeoutError, ShuttingDownError
from modelyard.serving.batcher import DynamicBatcher

pytestmark = pytest.mark.anyio

WEIGHT = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))


def model(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x @ WEIGHT, dim=1)


class Recorder:
    """The model, recording every batch it is called with (and optionally slow or failing)."""

    def __init__(self, delay: float = 0.0, fail_on: float | None = None) -> None:
        self.sizes: list[int] = []
        self.delay = delay
        self.fail_on = fail_on
        self.threads: set[str] = set()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_on is not None and bool((x == self.fail_on).any()):
            raise RuntimeError("poisoned row")
        return model(x)


def requests(n: int, rows: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(rows, 4, generator=gen) for _ in range(n)]


async def test_concurrent_requests_share_one_forward_pass_and_get_their_own_rows() -> None:
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=64, max_wait_ms=50)
    xs = requests(10, rows=2)
    outs = await asyncio.gather(*(batcher.submit(x) for x in xs))
    await batcher.close()
    assert rec.sizes == [20]  # ten requests of two rows, one forward pass
    for x, out in zip(xs, outs):
        torch.testing.assert_close(out, model(x), rtol=0, atol=1e-6)
    assert all(name.startswith("modelyard-") for name in rec.threads)  # not the event loop's thread


async def test_numpy_outputs_are_handed_back_row_by_row_like_tensors() -> None:
    batcher = DynamicBatcher(
        lambda x: model(x).numpy(), max_batch_size=64, max_wait_ms=50
    )  # the serving backends' form
    xs = requests(5, rows=3)
    outs = await asyncio.gather(*(batcher.submit(x) for x in xs))
    await batcher.close()
    for x, out in zip(xs, outs):
        assert isinstance(out, np.ndarray) and out.shape == (3, 3)
        np.testing.assert_allclose(out, model(x).numpy(), rtol=0, atol=1e-6)


async def test_batches_never_exceed_max_batch_size_and_split_on_request_boundaries() -> None:
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=5, max_wait_ms=20)
    xs = requests(6, rows=2)
    outs = await asyncio.gather(*(batcher.submit(x) for x in xs))
    await batcher.close()
    assert rec.sizes == [4, 4, 4]  # 2+2 fit in 5, a third request of 2 would not
    for x, out in zip(xs, outs):
        torch.testing.assert_close(out, model(x), rtol=0, atol=1e-6)


async def test_a_request_larger_than_the_batch_runs_alone() -> None:
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=4, max_wait_ms=1)
    (x,) = requests(1, rows=9)
    out = await batcher.submit(x)
    await batcher.close()
    assert rec.sizes == [9]
    torch.testing.assert_close(out, model(x), rtol=0, atol=1e-6)


async def test_a_lone_client_does_not_wait_but_concurrent_ones_wait_for_company() -> None:
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_size=64, max_wait_ms=300)
    await batcher.start(torch.zeros(1, 4))
    start = time.perf_counter()
    for x in requests(3):  # one client, one request at a time
        await batcher.submit(x)
    assert time.perf_counter() - start < 0.6  # waiting for company would take 3 x 300 ms
    assert rec.sizes == [1, 1, 1, 1]
    for _ in range(5):  # concurrent bursts: the batcher learns that requests come together
        await asyncio.gather(*(batcher.submit(x) for x in requests(4)))

    async def late(x: torch.Tensor) -> torch.Tensor:
        await asyncio.sleep(0.03)
        return await batcher.submit(x)

    xs = requests(2)
    start = time.perf_counter()
    await asyncio.gather(batcher.submit(xs[0]), late(xs[1]))  # 30 ms apart, within max_wait
    waited = time.perf_counter() - start
    await batcher.close()
    assert rec.sizes[-1] == 2 and 0.025 <= waited < 0.6  # joined without waiting out a second max_wait


async def test_full_queue_answers_queue_full_with_retry_after() -> None:
    rec = Recorder(delay=0.2)
    batcher = DynamicBatcher(rec, max_batch_size=1, max_wait_ms=0, max_queue=2)
    first = asyncio.ensure_future(batcher.submit(torch.zeros(1, 4)))
    await asyncio.sleep(0.05)  # the first is computing; two more fill the queue
    waiting = [asyncio.ensure_future(batcher.submit(torch.zeros(1, 4))) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(QueueFullError) as info:
        await batcher.submit(torch.zeros(1, 4))
    assert info.value.http_status == 503 and info.value.retry_after >= 1
    assert "limit 2" in info.value.message
    await asyncio.gather(first, *waiting)
    await batcher.close()


async def test_timeout_gives_504_and_frees_the_queue_slot() -> None:
    rec = Recorder(delay=0.3)
    batcher = DynamicBatcher(rec, max_batch_size=1, max_wait_ms=0, timeout_s=0.1)
    slow = asyncio.ensure_future(batcher.submit(torch.zeros(1, 4)))
    await asyncio.sleep(0.01)
    with pytest.raises(RequestTimeoutError) as info:
        await batcher.submit(torch.ones(1, 4))  # queued behind a 0.3 s forward pass
    assert info.value.http_status == 504
    assert batcher.queue_depth == 0
    with pytest.raises(RequestTimeoutError):
        await slow
    await batcher.close()
    assert rec.sizes == [1]  # the timed-out queued request never ran


async def test_a_failing_batch_is_retried_per_request_so_only_the_culprit_fails() -> None:
    rec = Recorder(fail_on=99.0)
    batcher = DynamicBatcher(rec, max_batch_size=16, max_wait_ms=30)
    xs = requests(3)
    poisoned = torch.full((1, 4), 99.0)
    results = await asyncio.gather(
        batcher.submit(xs[0]),
        batcher.submit(poisoned),
        batcher.submit(xs[1]),
        batcher.submit(xs[2]),
        return_exceptions=True,
    )
    await batcher.close()
    assert isinstance(results[1], RuntimeError)
    for x, out in zip(xs, [results[0], results[2], results[3]]):
        torch.testing.assert_close(out, model(x), rtol=0, atol=1e-6)
    assert rec.sizes[0] == 4 and sorted(rec.sizes[1:]) == [1, 1, 1, 1]


async def test_a_model_returning_the_wrong_number_of_rows_is_an_error_not_a_silent_misalignment() -> None:
    batcher = DynamicBatcher(lambda x: model(x)[:1], max_batch_size=8, max_wait_ms=20)
    results = await asyncio.gather(*(batcher.submit(x) for x in requests(2, rows=2)), return_exceptions=True)
    await batcher.close()
    assert all(isinstance(r, RuntimeError) and "rows" in str(r) for r in results)


async def test_close_drains_queued_requests_then_refuses_new_ones() -> None:
    rec = Recorder(delay=0.05)
    batcher = DynamicBatcher(rec, max_batch_size=2, max_wait_ms=0)
    xs = requests(5)
    pending = [asyncio.ensure_future(batcher.submit(x)) for x in xs]
    await asyncio.sleep(0.01)
    await batcher.close(drain=True)
    for x, fut in zip(xs, pending):
        assert fut.done()
        torch.testing.assert_close(fut.result(), model(x), rtol=0, atol=1e-6)
    with pytest.raises(ShuttingDownError):
        await batcher.submit(xs[0])


async def test_cancelled_request_is_skipped() -> None:
    rec = Recorder(delay=0.1)
    batcher = DynamicBatcher(rec, max_batch_size=1, max_wait_ms=0)
    first = asyncio.ensure_future(batcher.submit(torch.zeros(1, 4)))
    await asyncio.sleep(0.01)
    gone = asyncio.ensure_future(batcher.submit(torch.ones(1, 4)))
    await asyncio.sleep(0.01)
    gone.cancel()  # the client disconnected while queued
    await first
    await batcher.close()
    assert rec.sizes == [1]
