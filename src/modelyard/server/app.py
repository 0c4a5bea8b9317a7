"""``create_server_app``: the control plane's one app: REST API and web console on one port.

Routers come from each subpackage's ``routes`` module (jobs, auth, deployments, models, tunes,
datasets, federations, console), each ``router(state) -> APIRouter``; none contains auth code, because ``AuthMiddleware`` wraps
everything. The lifespan starts the training worker pool, the reaper and the deployment
supervisor, and stops them on shutdown. Errors go through the handlers both apps share
(``modelyard.http_errors``): a ``ModelyardError`` becomes its status with
``{"error", "message", "field"}``, request validation a 422 ``InvalidRequestError`` naming the
field path, anything else a logged 500 without a traceback in the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from modelyard.http_errors import add_error_handlers
from modelyard.server.auth import routes as auth_routes
from modelyard.server.auth.middleware import Auth, AuthMiddleware
from modelyard.server.config import ServerConfig
from modelyard.server.console import routes as console_routes
from modelyard.server.datasets import routes as datasets_routes
from modelyard.server.deployments import routes as deployments_routes
from modelyard.server.deployments.supervisor import Supervisor
from modelyard.server.federations import routes as federations_routes
from modelyard.server.jobs import routes as jobs_routes
from modelyard.server.jobs.pool import WorkerPool
from modelyard.server.jobs.reaper import Reaper
from modelyard.server.jobs.store import JobStore
from modelyard.server.models import routes as models_routes
from modelyard.server.retrain import routes as retrain_routes
from modelyard.server.tables import control_database
from modelyard.server.tunes import routes as tunes_routes

__all__ = ["create_server_app", "ServerState"]

_ROUTERS = (
    jobs_routes,
    auth_routes,
    deployments_routes,
    retrain_routes,
    models_routes,
    tunes_routes,
    datasets_routes,
    federations_routes,
    console_routes,
)


@dataclass
class ServerState:
    """What every router factory gets."""

    config: ServerConfig
    home: Path
    jobs: JobStore
    supervisor: Supervisor
    auth: Auth | None = None
    pool: WorkerPool | None = None  # while workers run


def create_server_app(config: ServerConfig, *, start_workers: bool = True) -> FastAPI:
    """The control plane app over the store ``config.home`` (``$MODELYARD_HOME`` by default)."""
    home = config.store_home()
    # Replicas read data files (an explanation's background sample) only where jobs may.
    data = {"data_dirs": tuple(str(d) for d in config.data_dirs), "max_data_mb": config.max_data_mb}
    supervisor = Supervisor(
        home,
        host="127.0.0.1",
        replica_options=data,
        alert_url=config.url(),
        data_access=config.data_access(),
        ray_port=config.ray_serve_port,
    )
    state = ServerState(config=config, home=home, jobs=JobStore(home), supervisor=supervisor)
    state.auth = Auth(config, home, internal_key=supervisor.alert_key)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        control_database(home)  # create or open the store (and fail early on a newer schema)
        reaper = Reaper(home, lease_s=config.lease_s, interval_s=config.reap_interval_s) if start_workers else None
        if start_workers:
            state.pool = WorkerPool(config, home)
            state.pool.start()
            reaper.start()
        state.supervisor.start()
        try:
            yield
        finally:
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

    for routes in _ROUTERS:
        app.include_router(routes.router(state))
    add_error_handlers(app)
    app.add_middleware(AuthMiddleware, auth=state.auth)
    return app
