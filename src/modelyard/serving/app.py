"""``create_app``: the FastAPI app that serves one or more model versions.

Routes: ``POST /v1/models/{name}/predict`` (latest served version),
``POST /v1/models/{name}/versions/{n}/predict``, ``GET /v1/models``, ``/healthz``,
``/readyz``, ``/metrics`` and the OpenAPI docs at ``/docs`` and ``/openapi.json``.

Errors go through the handlers both apps share (``modelyard.http_errors``): every
``ModelyardError`` carries its HTTP status, so a bad request is a 4xx with
``{"error", "message", "field"?}`` and only a genuine fault is a (logged) 500.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from modelyard.errors import NotFoundError, SpecError
from modelyard.hostguard import HostCheckMiddleware
from modelyard.http_errors import add_error_handlers
from modelyard.serving.auth import BearerAuthMiddleware
from modelyard.serving.config import ServeConfig
from modelyard.serving.embed_routes import add_embed_routes
from modelyard.serving.explain_routes import add_explain_routes
from modelyard.serving.limits import BodyLimitMiddleware
from modelyard.serving.metrics import CONTENT_TYPE_LATEST, MetricsMiddleware, ServeMetrics
from modelyard.serving.model import ServedModel
from modelyard.serving.monitor_routes import add_monitor_routes
from modelyard.serving.pipeline_model import ServedPipeline
from modelyard.serving.routes import LATEST_ROUTE, VERSION_ROUTE, PredictRoutes
from modelyard.serving.schemas import PREDICT_REQUEST_DOC, ErrorResponse, ModelList, PredictResponse
from modelyard.store.kinds import TRAINED
from modelyard.store.resolve import PRODUCTION

__all__ = ["create_app"]

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 415, 422, 503, 504)
}


def _default_version(versions: dict[int, ServedModel]) -> int:
    """What ``/v1/models/NAME/predict`` answers with: the store's bare-name rule among the served versions.

    The version aliased production, else the newest trained one, else the newest (see
    ``modelyard.store.resolve``), so serving a parent beside its int8 or distilled child
    never moves the bare name to the child.
    """
    records = {n: getattr(getattr(m, "predictor", None), "version", None) for n, m in versions.items()}
    aliased = [n for n, r in records.items() if PRODUCTION in getattr(r, "aliases", ())]
    trained = [n for n, r in records.items() if getattr(r, "kind", TRAINED) == TRAINED]
    return max(aliased or trained or versions)


class _ModelTable:
    """Served versions by name; "latest" is the version the bare name answers with (``_default_version``)."""

    def __init__(self, served: list[ServedModel]) -> None:
        self.by_name: dict[str, dict[int, ServedModel]] = {}
        for model in served:
            versions = self.by_name.setdefault(model.name, {})
            if model.version in versions:
                raise SpecError(f"Model {model.ref} is listed twice: expected each name:version once", field="models")
            versions[model.version] = model
        self.default = {name: _default_version(versions) for name, versions in self.by_name.items()}

    def __iter__(self) -> Any:
        return (m for versions in self.by_name.values() for m in versions.values())

    def get(self, name: str, version: int | None = None, *, pipelines: bool = False) -> ServedModel:
        """The served version; a pipeline only for the predict routes (``pipelines``), else a 404."""
        found = self._get(name, version)
        if getattr(found, "is_pipeline", False) and not pipelines:
            raise NotFoundError(
                f"{found.ref} is a voice pipeline: it answers only POST /v1/models/{name}/predict", field="name"
            )
        return found

    def _get(self, name: str, version: int | None = None) -> ServedModel:
        versions = self.by_name.get(name)
        if versions is None:
            raise NotFoundError(
                f"Model {name!r} is not served here: expected one of {sorted(self.by_name)}", field="name"
            )
        if version is None:
            return versions[self.default[name]]
        if version not in versions:
            raise NotFoundError(
                f"Version {version} of model {name!r} is not served here: expected one of {sorted(versions)}",
                field="version",
            )
        return versions[version]

    def latest(self, model: ServedModel) -> bool:
        return model.version == self.default[model.name]


def create_app(models: Sequence[Any] | Mapping[str, Any], config: ServeConfig | None = None) -> FastAPI:
    """An app serving ``models`` (Predictors, or objects with the same methods)."""
    config = config or ServeConfig()
    predictors = list(models.values()) if isinstance(models, Mapping) else list(models)
    if not predictors:
        raise SpecError("Nothing to serve: expected at least one model reference such as fashion-mlp:1", field="models")
    metrics = ServeMetrics(config.max_batch_size)
    table = _ModelTable(
        [
            ServedPipeline(p, config) if getattr(p, "kind", None) == "pipeline" else ServedModel(p, config, metrics)
            for p in predictors
        ]
    )
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for model in table:
            await model.start()
            if model.monitor is not None:
                await model.monitor.start()
        state["ready"] = True
        try:
            yield
        finally:  # uvicorn has already waited for in-flight requests; drain what is queued
            state["ready"] = False
            for model in table:
                if isinstance(model, ServedPipeline):
                    continue
                await model.batcher.close(drain=True)
                if model.monitor is not None:
                    await model.monitor.close()

    from modelyard import __version__

    app = FastAPI(
        title="modelyard",
        version=__version__,
        lifespan=lifespan,
        description="Predictions from registered modelyard models, with dynamic batching.",
    )
    app.state.models = table
    app.state.metrics = metrics
    app.state.config = config
    add_error_handlers(app)

    # Both predict routes are answered by PredictRoutes (routes.py) before FastAPI routing;
    # they are declared here for the OpenAPI document and so that a GET gets a 405.
    @app.post(
        LATEST_ROUTE,
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra=PREDICT_REQUEST_DOC,
        summary="Predict with the latest served version",
    )
    async def predict_latest(name: str) -> Response:  # pragma: no cover - served by PredictRoutes
        raise NotImplementedError

    @app.post(
        VERSION_ROUTE,
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra=PREDICT_REQUEST_DOC,
        summary="Predict with one served version",
    )
    async def predict_version(name: str, version: int) -> Response:  # pragma: no cover - served by PredictRoutes
        raise NotImplementedError

    @app.get("/v1/models", response_model=ModelList, summary="Served models: metadata, input schema, backend")
    async def list_models() -> dict[str, Any]:
        return {"models": [m.describe(table.latest(m)) for m in table]}

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: models loaded and warmed up", responses={503: {"model": ErrorResponse}})
    async def readyz() -> Response:
        if not state["ready"]:
            return JSONResponse({"error": "NotReady", "message": "Models are loading or the server is draining"}, 503)
        return JSONResponse({"status": "ready", "models": [m.ref for m in table]})

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    add_explain_routes(app)  # POST /v1/models/{name}[/versions/{n}]/explain (explain_routes.py)
    add_embed_routes(app)  # POST /v1/models/{name}[/versions/{n}]/embed (embed_routes.py)
    add_monitor_routes(app)  # GET .../monitor, POST .../feedback (monitor_routes.py)

    # Outermost last: metrics see every request, auth runs before any byte of the body is read.
    routes = {
        route.path: route for route in app.routes if getattr(route, "path", None) in (LATEST_ROUTE, VERSION_ROUTE)
    }
    app.add_middleware(PredictRoutes, models=table, config=config, routes=routes, slots=app.state.explain_slots)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.max_body_bytes)
    if config.api_key is not None:
        app.add_middleware(BearerAuthMiddleware, api_key=config.key())
    app.add_middleware(HostCheckMiddleware, guard=config.host_guard())
    app.add_middleware(
        MetricsMiddleware, metrics=metrics, routes=lambda: app.routes, models=lambda name: name in table.by_name
    )
    return app
