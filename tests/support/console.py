"""A small app with only the console engineer's routers, for tests that must not depend
on the rest of the control plane. Holds no tests itself.

Errors are mapped the way ``create_server_app`` maps them (a ModelyardError becomes its
status with ``{"error", "message", "field"}``), so answers here match the real server's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from modelyard.errors import ModelyardError
from modelyard.server.config import ServerConfig
from modelyard.server.console import routes as routes_console
from modelyard.server.deployments import routes as routes_deployments
from modelyard.server.deployments.supervisor import Supervisor
from modelyard.workflow import train

DIGITS = {
    "name": "digits-small",
    "seed": 0,
    "data": {"source": "digits", "validation": 0.15, "test": 0.2, "preprocess": ["standardize"]},
    "model": {"input": [64], "layers": [{"dense": 32, "activation": "relu"}, {"dense": 10, "activation": "softmax"}]},
    "train": {
        "loss": "cross_entropy",
        "optimizer": "adam",
        "lr": 0.003,
        "batch_size": 64,
        "epochs": 3,
        "metrics": ["accuracy"],
        "checkpoint": False,
    },
}


@dataclass
class State:
    home: Path
    supervisor: Any
    config: ServerConfig


def mini_app(home: Path, supervisor: Supervisor | None = None, config: ServerConfig | None = None) -> FastAPI:
    state = State(home=home, supervisor=supervisor or Supervisor(home), config=config or ServerConfig(home=home))
    app = FastAPI(lifespan=None)
    for module in (routes_deployments, routes_console):
        app.include_router(module.router(state))

    async def modelyard_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ModelyardError)
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    app.add_exception_handler(ModelyardError, modelyard_error)
    return app


@contextlib.asynccontextmanager
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8080") as http:
            yield http


def train_digits(home: Path, *, metrics: list[str] | None = None, name: str = "digits-small") -> str:
    """A real (tiny) digits model; returns its ref."""
    spec = {**DIGITS, "name": name, "train": {**DIGITS["train"], "metrics": metrics or ["accuracy"]}}
    return train(spec, home=home, progress=False).model_ref
