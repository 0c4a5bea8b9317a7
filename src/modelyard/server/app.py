"""``create_server_app``: the control plane's one app: REST API and web console on one port.

Routers come from their modules (jobs, catalog, deployments, console, session), each
``router(state) -> APIRouter``; none contains auth code, because ``AuthMiddleware`` wraps
everything. The lifespan starts the training worker pool, the reaper and the deployment
supervisor, and stops them on shutdown. Errors: a ``ModelyardError`` becomes its status
with ``{"error", "message", "field"}``, request validation a 422 naming the field path,
anything else a logged 500 without a traceback in the answer.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelyard._validation import join_path
from modelyard.errors import ModelyardError
from modelyard.server.auth.middleware import Auth, AuthMiddleware
from modelyard.server.config import ServerConfig
from modelyard.server.jobs.store import JobStore
from modelyard.store.db import database

__all__ = ["create_server_app", "ServerState"]

log = logging.getLogger(__name__)

# Routers of the other half of the control plane; each is optional while it is being built.
_OPTIONAL_ROUTERS = (
    "modelyard.server.console.catalog_routes",
    "modelyard.server.deployments.routes",
    "modelyard.server.console.routes",
)


@dataclass
class ServerState:
    """What every router factory gets."""

    config: ServerConfig
    home: Path
    jobs: JobStore
    supervisor: Any  # modelyard.server.deployments.Supervisor (None when that module is missing)
    auth: Auth | None = None
    pool: Any = None  # modelyard.server.pool.WorkerPool while workers run


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        log.warning("%s is not installed; its routes are left out", module)
        return None


def _supervisor(config: ServerConfig, home: Path) -> Any:
    deployments = _optional("modelyard.server.deployments.supervisor")
    return None if deployments is None else deployments.Supervisor(home, host="127.0.0.1")


def create_server_app(config: ServerConfig, *, start_workers: bool = True) -> FastAPI:
    """The control plane app over the store ``config.home`` (``$MODELYARD_HOME`` by default)."""
    from modelyard.server.auth import routes as session
    from modelyard.server.jobs import routes as routes_jobs

    home = config.store_home()
    state = ServerState(config=config, home=home, jobs=JobStore(home), supervisor=_supervisor(config, home))
    state.auth = Auth(config, home)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        from modelyard.server.jobs.pool import WorkerPool
        from modelyard.server.jobs.reaper import Reaper

        database(home)  # create or open the store (and fail early on a newer schema)
        reaper = Reaper(home, lease_s=config.lease_s, interval_s=config.reap_interval_s) if start_workers else None
        if start_workers:
            state.pool = WorkerPool(config, home)
            state.pool.start()
            reaper.start()
        if state.supervisor is not None:
            state.supervisor.start()
        try:
            yield
        finally:
            if state.supervisor is not None:
                state.supervisor.stop()
            if reaper is not None:
                reaper.stop()
            if state.pool is not None:
                state.pool.stop()

    app = FastAPI(title="modelyard control plane", version="1", lifespan=lifespan)
    app.state.server = state

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, Any]:
        workers = state.pool.status() if state.pool is not None else []
        return {"status": "ok", "workers": workers}

    app.include_router(routes_jobs.router(state))
    app.include_router(session.router(state))
    for name in _OPTIONAL_ROUTERS:
        module = _optional(name)
        if module is not None:
            app.include_router(module.router(state))
    _error_handlers(app)
    app.add_middleware(AuthMiddleware, auth=state.auth)
    return app


def _error_handlers(app: FastAPI) -> None:
    async def modelyard_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ModelyardError)
        if exc.http_status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        err = exc.errors()[0]
        where = join_path("", [p for p in err.get("loc", ()) if p != "body"]) or "body"
        message = f"Invalid value for `{where}`: {err.get('msg', 'invalid')}"
        if "input" in err and err.get("type") != "missing":
            message += f", received {str(err['input'])[:80]!r}"
        return JSONResponse({"error": "SpecError", "message": message, "field": where}, status_code=422)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = f"{exc.detail} ({request.method} {request.url.path}); see /docs for the routes"
        return JSONResponse(
            {"error": "HTTPError", "message": message}, status_code=exc.status_code, headers=exc.headers
        )

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return JSONResponse(
            {
                "error": "InternalError",
                "message": f"internal error ({type(exc).__name__}); the server log has the details",
            },
            status_code=500,
        )

    app.add_exception_handler(ModelyardError, modelyard_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
