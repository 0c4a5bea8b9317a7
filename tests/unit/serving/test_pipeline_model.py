"""A served pipeline's queue bound counts an utterance until its work ends, not until its answer times out."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from modelyard.errors import QueueFullError, RequestTimeoutError
from modelyard.serving import ServeConfig
from modelyard.serving.pipeline_model import ServedPipeline


@pytest.mark.anyio
async def test_an_utterance_that_timed_out_still_holds_its_place_until_its_work_ends() -> None:
    release = threading.Event()

    def run(samples: np.ndarray) -> dict:
        release.wait(5)  # the recognizer busy past the answer's timeout
        return {"transcript": "done"}

    pipeline = SimpleNamespace(name="p", number=1, ref="p:1", sample_rate=16000, run=run)
    served = ServedPipeline(pipeline, ServeConfig(max_queue=1, timeout_s=0.05))
    with pytest.raises(RequestTimeoutError, match="took longer than 0.05 s"):
        await served.predict([np.zeros(10, dtype=np.float32)])
    # its thread still runs: the queue of 1 is full until it ends
    with pytest.raises(QueueFullError, match="1 utterances waiting"):
        await served.predict([np.zeros(10, dtype=np.float32)])
    release.set()
    for _ in range(100):
        if served._waiting == 0:
            break
        await asyncio.sleep(0.02)
    answer = await served.predict([np.zeros(10, dtype=np.float32)])
    assert answer["transcript"] == "done" and served._waiting == 0
