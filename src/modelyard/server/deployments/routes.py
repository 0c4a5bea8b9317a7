"""``/v1/deployments``: create, list, show and delete deployments, and predict through them.

``POST /v1/deployments/{name}/predict`` forwards the body, its Content-Type and its query string to one
ready replica (round robin) and returns the replica's answer unchanged, so a client sees
exactly the serving API of ``modelyard serve``. A replica that cannot be reached is
skipped for the next one (a prediction has no side effects, so repeating it is safe);
with none left the answer is a 503 that says why. ``POST /v1/deployments/{name}/explain`` does
the same for the explain route (attributions; the console's playground calls it). An
``engine: ray`` deployment has one target, Ray Serve's proxy, which picks the replica itself
(and resends an idempotent request whose replica died: serving/ray_retry.py).

``GET /v1/deployments/{name}/monitor?window=N&replica=I`` is the monitoring report of one
replica (the first running one, or replica ``I``): each replica logs the requests it served.
``POST /v1/deployments/{name}/feedback`` goes to the replicas in turn until the one that logged
the ``request_id`` takes it. Both need a deployment created with ``monitor_sample`` above 0
(else a 409 that says so); the replica's own answers (a 422 for a window larger than its log)
come back unchanged.
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
from modelyard.errors import DeploymentUnavailableError, InputError, InvalidRequestError
from modelyard.server.body import read_body

if TYPE_CHECKING:
    from modelyard.server.app import ServerState

__all__ = ["router", "MAX_BODY_BYTES"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024  # the serving default (ServeConfig.max_body_bytes)
_TIMEOUT = httpx.Timeout(30.0, connect=1.0)
_PASSED_HEADERS = ("content-type", "retry-after")
REPLICA_HEADER = "x-modelyard-replica"  # which replica answered a monitor or feedback call


def _index(text: str | None, field: str) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise InvalidRequestError(
            f"Invalid value for `{field}`: expected a non-negative integer, received {text!r}", field=field
        )
    return int(text)


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

    async def send(method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One call to a replica with the replicas' key, on the shared pool."""
        headers = {**kwargs.pop("headers", {}), "authorization": f"Bearer {supervisor.api_key}"}
        client = holder.get("client")
        if client is not None:
            return await client.request(method, url, headers=headers, **kwargs)
        async with httpx.AsyncClient(timeout=_TIMEOUT) as once:  # app without lifespan (a bare ASGI test client)
            return await once.request(method, url, headers=headers, **kwargs)

    def passed(answer: httpx.Response, **extra: str) -> Response:
        headers = {k: answer.headers[k] for k in _PASSED_HEADERS if k in answer.headers} | extra
        return Response(answer.content, status_code=answer.status_code, headers=headers)

    @api.get("/{name}/monitor", summary="Monitoring checks of one replica's last window (the serving monitor route)")
    async def monitor(name: str, request: Request) -> Response:
        query = request.query_params
        replica = _index(query.get("replica"), "replica")
        params = {"window": query["window"]} if "window" in query else {}  # the replica checks it
        targets, path = await run_in_threadpool(supervisor.monitor_targets, name, replica)
        for index, url in targets:
            try:
                answer = await send("GET", f"{url}{path}/monitor", params=params)
            except httpx.TransportError as exc:
                log.warning("deployment %s: replica %s did not answer (%s); trying the next", name, url, exc)
                continue
            return passed(answer, **{REPLICA_HEADER: str(index)})
        raise DeploymentUnavailableError(
            f"Deployment {name!r}: no replica answered ({len(targets)} tried); retry shortly"
        )

    @api.post("/{name}/feedback", summary="True labels of a logged request, sent to the replica that logged it")
    async def feedback(name: str, request: Request) -> Response:
        body = await read_body(request, MAX_BODY_BYTES)
        targets, path = await run_in_threadpool(supervisor.monitor_targets, name)
        answer = None
        for index, url in targets:
            try:
                answer = await send(
                    "POST", f"{url}{path}/feedback", content=body, headers={"content-type": "application/json"}
                )
            except httpx.TransportError as exc:
                log.warning("deployment %s: replica %s did not answer (%s); trying the next", name, url, exc)
                continue
            if not _unknown_request(answer):
                return passed(answer, **{REPLICA_HEADER: str(index)})
        if answer is None:
            raise DeploymentUnavailableError(
                f"Deployment {name!r}: no replica answered ({len(targets)} tried); retry shortly"
            )
        return passed(answer)  # no replica logged that request_id: the last one's 404 says so

    @api.post("/{name}/predict", summary="Predict through a ready replica (same body and answer as the serving API)")
    async def predict(name: str, request: Request) -> Response:
        return await forward(name, request, "predict")

    @api.post("/{name}/explain", summary="Explain through a ready replica (same body and answer as the serving API)")
    async def explain(name: str, request: Request) -> Response:
        return await forward(name, request, "explain")

    async def forward(name: str, request: Request, action: str) -> Response:
        """The request's body to the deployed version's ``action`` route on the next ready replica."""
        body = await read_body(request, MAX_BODY_BYTES)
        urls, path = supervisor.targets(name, action)
        if request.url.query:  # ?top_k=3, ?heatmap=saliency, ?method=...: the replica checks them
            path = f"{path}?{request.url.query}"
        headers = {"content-type": request.headers.get("content-type", "application/json")}
        for url in urls:
            try:
                answer = await send("POST", url + path, content=body, headers=headers)
            except httpx.TransportError as exc:
                log.warning("deployment %s: replica %s did not answer (%s); trying the next", name, url, exc)
                continue
            return passed(answer)
        raise DeploymentUnavailableError(f"Deployment {name!r}: no replica answered ({len(urls)} tried); retry shortly")

    return api


def _unknown_request(answer: httpx.Response) -> bool:
    """A replica's 404 for a ``request_id`` it did not log (another replica may have)."""
    if answer.status_code != 404:
        return False
    try:
        return answer.json().get("field") == "request_id"
    except ValueError:
        return False
