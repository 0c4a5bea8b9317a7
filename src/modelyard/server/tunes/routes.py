"""``/v1/tunes``: start a tune (one queued job per trial), list studies, show one.

``POST /v1/tunes`` body: ``{"spec": {...}, "search": {"train.lr": "loguniform(1e-4,1e-1)"} or
["train.lr=loguniform(1e-4,1e-1)"], "trials", "metric", "direction", "sampler", "pruner", "seed",
"study"}`` (or a ``tune:`` section inside the spec). Everything is checked before the study is
created; 422 names the bad field. The trials train on whichever workers are free
(``tuning/jobs.py``); ``GET /v1/tunes/{study}`` is what ``modelyard tune show`` prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from modelyard._documents import load_json
from modelyard.errors import SpecError
from modelyard.server.body import read_body
from modelyard.server.jobs.submit import MAX_BODY_BYTES, JobRequest, check_spec

if TYPE_CHECKING:
    from modelyard.server.app import ServerState

__all__ = ["router"]


def router(state: ServerState) -> APIRouter:
    access = state.config.data_access()
    api = APIRouter(prefix="/v1/tunes", tags=["tunes"])

    @api.post("", status_code=201, summary="Start a tune: its study, one queued job per trial")
    async def start(request: Request) -> dict[str, Any]:
        from modelyard.tuning.jobs import submit_tune

        body = load_json(
            (await read_body(request, MAX_BODY_BYTES, what="Tune body")).decode("utf-8", "replace"),
            SpecError,
            "JSON body",
        )
        if not isinstance(body, dict):
            raise SpecError(f"Invalid tune body: expected a JSON object, received {type(body).__name__}", field="body")
        principal = getattr(request.state, "principal", None)
        by = principal.name if principal is not None else None

        def submit(spec: dict[str, Any]) -> str:
            return state.jobs.submit(spec, max_attempts=1, submitted_by=by).id

        return await run_in_threadpool(
            submit_tune,
            body,
            home=state.home,
            submit=submit,
            check_spec=lambda spec: check_spec(JobRequest(spec=spec), access, home=state.home),
        )

    @api.get("", summary="The studies in the store")
    def list_tunes() -> dict[str, Any]:
        from modelyard.tuning.study import study_names

        return {"studies": study_names(state.home)}

    @api.get("/{study}", summary="One study: trials, best so far, history, importances")
    def show(study: str) -> dict[str, Any]:
        from modelyard.tuning.report import describe_study

        return describe_study(study, state.home)

    return api
