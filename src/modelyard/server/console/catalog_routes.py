"""Read-only catalog of the store for the console: ``/v1/runs`` and ``/v1/models``.

Everything is addressed by run id or ``name``/``version``, never by a path. The store
calls are blocking (SQLite, model files), so they run in the thread pool.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from modelyard.server.console.catalog import Catalog

__all__ = ["router"]


def router(state: Any) -> APIRouter:
    """Catalog routes over ``state.home``."""
    catalog = Catalog(state.home)
    api = APIRouter(prefix="/v1", tags=["catalog"])

    @api.get("/runs", summary="Training runs, newest first (without spec and per-epoch history)")
    async def list_runs(
        name: str | None = None, status: str | None = None, limit: int = Query(50, ge=1, le=1000)
    ) -> dict[str, Any]:
        return {"runs": await run_in_threadpool(lambda: catalog.runs(name=name, status=status, limit=limit))}

    @api.get("/runs/{run_id}", summary="One run with its resolved spec and per-epoch metric history")
    async def show_run(run_id: str) -> dict[str, Any]:
        return await run_in_threadpool(catalog.run, run_id)

    @api.get("/models", summary="Registered model versions, newest first, with their test metrics")
    async def list_models(name: str | None = None) -> dict[str, Any]:
        return {"models": await run_in_threadpool(lambda: catalog.models(name))}

    @api.get(
        "/models/{name}/versions/{version}",
        summary="One version: metrics, training curve, lineage, input schema and playground hints",
    )
    async def show_version(name: str, version: int) -> dict[str, Any]:
        return await run_in_threadpool(catalog.version, name, version)

    @api.get(
        "/models/{name}/versions/{version}/confusion_matrix",
        summary="Confusion matrix on the version's evaluation split (rows: true class)",
    )
    async def confusion(name: str, version: int) -> dict[str, Any]:
        return await run_in_threadpool(catalog.confusion, name, version)

    return api
