"""``GET /v1/models/{name}[/versions/{n}]/monitor`` and ``POST .../feedback``: monitoring of a served version.

``monitor`` answers the checks of the last ``?window=N`` logged instances (default
``--monitor-window``); ``feedback`` takes ``{"request_id": ..., "labels": [...]}``, the true labels
of one logged request, for live accuracy. Both need ``--monitor-sample`` (404 without it).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from modelyard.errors import InvalidInstancesError, NotFoundError
from modelyard.serving.limits import parse_json
from modelyard.serving.schemas import ErrorResponse

__all__ = ["add_monitor_routes"]


def _monitor(app: FastAPI, name: str, version: int | None) -> Any:
    served = app.state.models.get(name, version)
    if served.monitor is None:
        raise NotFoundError(
            f"Model {served.ref} is not monitored: expected a server started with --monitor-sample above 0 "
            "and a version registered with its reference.safetensors",
            field="name",
        )
    return served.monitor


def _window(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise InvalidInstancesError(
            f"Invalid value for `window`: expected a positive integer, received {text!r}", field="window"
        )
    return int(text)


def add_monitor_routes(app: FastAPI) -> None:
    """Declare the monitor and feedback routes on ``app`` (its ``state.models`` and ``state.metrics``)."""
    errors: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 404, 413, 422)}

    async def report(request: Request, name: str, version: int | None) -> Response:
        monitor = _monitor(app, name, version)
        body = await asyncio.to_thread(monitor.report, _window(request.query_params.get("window")))
        app.state.metrics.publish_monitor(body)
        return Response(orjson.dumps(body), media_type="application/json")

    async def feedback(request: Request, name: str, version: int | None) -> Response:
        monitor = _monitor(app, name, version)
        payload = parse_json(await request.body(), max_depth=app.state.config.max_json_depth)
        if not isinstance(payload, dict):
            raise InvalidInstancesError(
                f'Invalid request body: expected {{"request_id": ..., "labels": [...]}}, received '
                f"{type(payload).__name__}",
                field="body",
            )
        count = monitor.log.feedback(payload.get("request_id"), payload.get("labels"))
        return Response(
            orjson.dumps({"request_id": payload["request_id"], "labels": count}), media_type="application/json"
        )

    async def monitor_latest(name: str, request: Request) -> Response:
        return await report(request, name, None)

    async def monitor_version(name: str, version: int, request: Request) -> Response:
        return await report(request, name, version)

    async def feedback_latest(name: str, request: Request) -> Response:
        return await feedback(request, name, None)

    async def feedback_version(name: str, version: int, request: Request) -> Response:
        return await feedback(request, name, version)

    for path, endpoint, method, summary in (
        ("/v1/models/{name}/monitor", monitor_latest, "GET", "Monitoring checks of the default served version"),
        ("/v1/models/{name}/versions/{version}/monitor", monitor_version, "GET", "Monitoring checks of one version"),
        ("/v1/models/{name}/feedback", feedback_latest, "POST", "True labels of a logged request (live accuracy)"),
        ("/v1/models/{name}/versions/{version}/feedback", feedback_version, "POST", "True labels, one version"),
    ):
        app.add_api_route(path, endpoint, methods=[method], responses=errors, summary=summary)
