"""Live job events as Server-Sent Events (``GET /v1/jobs/{id}/events``).

The stream polls the database and the job's log (workers are other processes, so there
is nothing to subscribe to in-process) and sends what changed:

    event: status   the job (without history) whenever its status/attempt/progress changes
    event: epoch    {"epoch": 3, "loss": ..., ...} for each new epoch of the job's run
    event: log      {"text": "..."} new lines of the job's log
    event: end      the final job (with history); the stream closes after it

A comment line every ``keepalive_s`` keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio

from modelyard._files import to_jsonable
from modelyard.server.jobs.logfile import read_log
from modelyard.server.jobs.store import Job, JobStore
from modelyard.store import RunStore

__all__ = ["job_events", "format_event", "job_history"]


def format_event(event: str, data: Any) -> str:
    """One SSE message; the JSON payload never contains a raw newline."""
    return f"event: {event}\ndata: {json.dumps(to_jsonable(data), allow_nan=False)}\n\n"


def job_history(runs: RunStore, job: Job) -> list[dict[str, Any]]:
    """Per-epoch metrics of the job's run (empty until the run exists)."""
    if job.run_id is None:
        return []
    return runs.get(job.run_id).history


async def job_events(
    jobs: JobStore, job_id: str, *, poll_s: float = 0.5, keepalive_s: float = 15.0
) -> AsyncIterator[str]:
    """The event stream of one job, until it reaches a final state."""
    runs = RunStore(jobs.home)
    job = await anyio.to_thread.run_sync(jobs.get, job_id)
    log_path = jobs.log_path(job.id)
    sent_key: tuple[Any, ...] | None = None
    epochs_sent, offset, last_sent = 0, 0, time.monotonic()
    while True:
        history = await anyio.to_thread.run_sync(job_history, runs, job)
        text, offset = await anyio.to_thread.run_sync(read_log, log_path, offset)
        out: list[str] = []
        key = (job.status, job.attempts, job.run_id, json.dumps(job.progress, sort_keys=True), job.error)
        if key != sent_key:
            out.append(format_event("status", job.to_dict(spec=False)))
            sent_key = key
        # A resumed run repeats epochs after its checkpoint; the history holds each once.
        for row in history[epochs_sent:]:
            out.append(format_event("epoch", row))
        epochs_sent = max(epochs_sent, len(history))
        if text:
            out.append(format_event("log", {"text": text}))
        if job.final:
            out.append(format_event("end", {**job.to_dict(), "history": history}))
            yield "".join(out)
            return
        if out:
            last_sent = time.monotonic()
            yield "".join(out)
        elif time.monotonic() - last_sent > keepalive_s:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        await anyio.sleep(poll_s)
        job = await anyio.to_thread.run_sync(jobs.get, job.id)
