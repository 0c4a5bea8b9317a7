"""``/v1/deployments``: create, list, show and delete deployments, and predict through them.

``POST /v1/deployments/{name}/predict`` forwards the body and its Content-Type to one
ready replica (round robin) and returns the replica's answer unchanged, so a client sees
exactly the serving API of ``modelyard serve``. A replica that cannot be reached is
skipped for the next one (a prediction has no side effects, so repeating it is safe);
with none left the answer is a 503 that says why.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool

from modelyard._documents import load_json
from modelyard.errors import DeploymentUnavailableError, InputError
from modelyard.server.body import read_body

if TYPE_CHECKING:
    from modelyard.server.app import ServerState

__all__ = ["router", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024  # the serving default (ServeConfig.max_body_bytes)
_TIMEOUT = httpx.Timeout(30.0, connect=1.0)
_PASSED_HEADERS = ("content-type", "retry-after")


async def _json_body(request: Request) -> Any:
    raw = await read_body(request, 1024 * 1024)
    return load_json(raw or b"null", InputError, "request body")


def router(state: ServerState) -> APIRouter:
    """The deployment routes of the control plane (``state.supervisor`` does the work)."""
    holder: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=_TIMEOUT) as client:  # one pool for every proxied request
            holder["client"] = client
            try:
                yield
            finally:
                holder.pop("client", None)

    api = APIRouter(prefix="/v1/deployments", tags=["deployments"], lifespan=lifespan)
    supervisor = state.supervisor

    @api.post("", status_code=201, summary="Deploy a model version on supervised serving processes")
    async def create(request: Request) -> dict[str, Any]:
        body = await _json_body(request)
        return await run_in_threadpool(supervisor.create, body)

    @api.get("", summary="Every deployment with its status, replicas and traffic")
    async def list_deployments() -> dict[str, Any]:
        return {"deployments": await run_in_threadpool(supervisor.list)}

    @api.get("/{name}", summary="One deployment: status, replicas (pid, port, restarts), request rate, p50/p99")
    async def show(name: str) -> dict[str, Any]:
        return await run_in_threadpool(supervisor.describe, name)

    @api.delete("/{name}", summary="Stop the replicas (SIGTERM, then SIGKILL) and remove the deployment")
    async def delete(name: str) -> dict[str, Any]:
        return await run_in_threadpool(supervisor.delete, name)

    @api.post("/{name}/predict", summary="Predict through a ready replica (same body and answer as the serving API)")
    async def predict(name: str, request: Request) -> Response:
        body = await read_body(request, MAX_BODY_BYTES)
        urls, path = supervisor.targets(name)
        headers = {
            "content-type": request.headers.get("content-type", "application/json"),
            "authorization": f"Bearer {supervisor.api_key}",
        }
        client = holder.get("client")
        for url in urls:
            try:
                if client is not None:
                    answer = await client.post(url + path, content=body, headers=headers)
                else:  # app without lifespan (a bare ASGI test client): one client per call
                    async with httpx.AsyncClient(timeout=_TIMEOUT) as once:
                        answer = await once.post(url + path, content=body, headers=headers)
            except httpx.TransportError as exc:
                log.warning("deployment %s: replica %s did not answer (%s); trying the next", name, url, exc)
                continue
            passed = {k: answer.headers[k] for k in _PASSED_HEADERS if k in answer.headers}
            return Response(answer.content, status_code=answer.status_code, headers=passed)
        raise DeploymentUnavailableError(f"Deployment {name!r}: no replica answered ({len(urls)} tried); retry shortly")

    return api
