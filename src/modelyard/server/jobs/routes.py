"""``/v1/jobs``: submit training jobs, follow them, read their logs, cancel them.

Handlers are thin: ``submit`` validates, ``JobStore`` records, workers do the training.
Synchronous handlers run in FastAPI's thread pool, so database waits never block the
event loop (the event stream hands its reads to threads too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, StreamingResponse

from modelyard.server.body import read_body
from modelyard.server.jobs.events import job_events, job_history
from modelyard.server.jobs.logfile import read_log
from modelyard.server.jobs.submit import MAX_BODY_BYTES, check_spec, parse_body
from modelyard.store import RunStore

if TYPE_CHECKING:
    from modelyard.server.app import ServerState

__all__ = ["router"]


def router(state: ServerState) -> APIRouter:
    jobs = state.jobs
    runs = RunStore(state.home)
    access = state.config.data_access()
    api = APIRouter(prefix="/v1/jobs", tags=["jobs"])

    @api.post("", status_code=201, summary="Submit a training job")
    async def submit(request: Request) -> dict[str, Any]:
        """Body: a spec (JSON or YAML), or ``{"spec", "overrides", "max_attempts"}``. 422 names the bad field."""
        parsed = parse_body(
            await read_body(request, MAX_BODY_BYTES, what="Job body"), request.headers.get("content-type")
        )
        spec = await run_in_threadpool(lambda: check_spec(parsed, access, home=state.home))
        principal = getattr(request.state, "principal", None)
        job = await run_in_threadpool(
            jobs.submit,
            spec,
            max_attempts=parsed.max_attempts or state.config.max_attempts,
            submitted_by=principal.name if principal is not None else None,
        )
        return {**job.to_dict(), "history": []}

    @api.get("", summary="List jobs, newest first")
    def list_jobs(status: str | None = None, limit: int = Query(50, ge=1, le=1000)) -> dict[str, Any]:
        return {"jobs": [job.to_dict(spec=False) for job in jobs.list(status=status, limit=limit)]}

    @api.get("/{job_id}", summary="One job: status, progress, per-epoch metrics, error")
    def show(job_id: str) -> dict[str, Any]:
        job = jobs.get(job_id)
        return {**job.to_dict(), "history": job_history(runs, job)}

    @api.get("/{job_id}/events", summary="Live events (Server-Sent Events) until the job ends")
    async def events(job_id: str) -> StreamingResponse:
        await run_in_threadpool(jobs.get, job_id)  # an unknown id is a 404 before the stream starts
        return StreamingResponse(
            job_events(jobs, job_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @api.get("/{job_id}/logs", summary="The worker output of every attempt, from byte `offset`")
    def logs(job_id: str, offset: int = Query(0, ge=0)) -> Response:
        job = jobs.get(job_id)
        text, next_offset = read_log(jobs.log_path(job.id), offset)
        return PlainTextResponse(text, headers={"X-Next-Offset": str(next_offset), "X-Job-Status": job.status})

    @api.post("/{job_id}/cancel", summary="Cancel a queued or running job")
    def cancel(job_id: str) -> dict[str, Any]:
        job = jobs.cancel(job_id)
        return {**job.to_dict(), "history": job_history(runs, job)}

    return api
