"""``POST /v1/internal/deployments/{name}/alerts``: where a deployment's replicas send their alerts.

Internal: the auth middleware lets through only the key the supervisor gives its replicas
(``Supervisor.alert_key``), on loopback too; no user token opens it. Not in the OpenAPI schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from modelyard._documents import load_json
from modelyard.errors import InputError
from modelyard.server.auth.middleware import INTERNAL_PREFIX
from modelyard.server.body import read_body
from modelyard.server.retrain.trigger import on_alert

if TYPE_CHECKING:
    from modelyard.server.app import ServerState

__all__ = ["router"]

_MAX_BODY = 256 * 1024


def router(state: ServerState) -> APIRouter:
    api = APIRouter(prefix=INTERNAL_PREFIX.rstrip("/"), tags=["internal"], include_in_schema=False)
    access = state.config.data_access()

    @api.post("/deployments/{name}/alerts")
    async def alert(name: str, request: Request) -> dict[str, Any]:
        body = load_json(await read_body(request, _MAX_BODY, what="Alert body") or b"null", InputError, "alert body")
        return await run_in_threadpool(
            on_alert,
            state.supervisor.store,
            state.jobs,
            name,
            body,
            access=access,
            max_attempts=state.config.max_attempts,
        )

    return api
