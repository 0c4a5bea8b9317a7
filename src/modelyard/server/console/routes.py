"""The web console's routes: the page, its assets, and the read-only catalog it shows.

- ``GET /`` (the page) and ``GET /console/{file}`` (its assets). The assets ship inside the
  package (``modelyard/server/console/``: plain HTML, ES modules, CSS and the vendored uPlot
  chart library), so the console works without a build step and without reaching any CDN.
  Only files listed at startup are served (a path from the URL is looked up in that list,
  never joined onto the disk), and every answer carries a Content-Security-Policy that
  allows scripts from this origin only.
- ``GET /console/js/status.js``: the run and job states of ``modelyard.status`` as an ES
  module, written by the server (not a file), so the console has no copy of its own.
- ``/v1/runs`` and ``/v1/models``: everything addressed by run id or ``name``/``version``,
  never by a path. The store calls are blocking (SQLite, model files), so they run in the
  thread pool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from modelyard.errors import NotFoundError
from modelyard.server.console.catalog import Catalog
from modelyard.status import FINAL, Status

if TYPE_CHECKING:
    from modelyard.server.app import ServerState

__all__ = ["router", "CONSOLE_DIR", "SECURITY_HEADERS", "status_module"]

CONSOLE_DIR = Path(__file__).resolve().parent

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
# No inline scripts and no other origins; uPlot sets element styles from script, which
# CSP allows; 'unsafe-inline' for styles covers the style attributes it writes. Media from
# data: and blob: only: the playground plays a voice pipeline's reply (a base64 WAV in the
# answer) and the clip it just recorded (an object URL); default-src would refuse both.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; media-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def _asset_table(root: Path) -> dict[str, Path]:
    """URL name (``js/app.js``) → file, for every servable file under ``root``."""
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in _TYPES and not p.name.startswith(".")
    }


def status_module() -> bytes:
    """``js/status.js``: ``STATUS.SUCCEEDED === "succeeded"`` and the set of final states, from ``Status``."""
    states = json.dumps({s.name: s.value for s in Status})
    final = json.dumps([s.value for s in Status if s in FINAL])
    return (
        "// Run and job states, written by the server from modelyard.status (one vocabulary for all).\n"
        f"export const STATUS = Object.freeze({states});\n"
        f"export const FINAL = new Set({final});\n"
    ).encode()


def _file_response(path: Path) -> Response:
    return Response(path.read_bytes(), media_type=_TYPES[path.suffix], headers=SECURITY_HEADERS)


def router(state: ServerState) -> APIRouter:
    """The console's page and assets from the installed package, and the catalog over ``state.home``."""
    api = APIRouter()
    api.include_router(_catalog(Catalog(state.home, state.config.data_access())))
    api.include_router(_assets(_asset_table(CONSOLE_DIR), {"js/status.js": status_module()}))
    return api


def _assets(assets: dict[str, Path], generated: dict[str, bytes]) -> APIRouter:
    api = APIRouter(tags=["console"], include_in_schema=False)

    @api.get("/")
    async def index() -> Response:
        return _file_response(assets["index.html"])

    @api.get("/console/{name:path}")
    async def asset(name: str) -> Response:
        if name in generated:
            return Response(generated[name], media_type=_TYPES[Path(name).suffix], headers=SECURITY_HEADERS)
        found = assets.get(name or "index.html")
        if found is None:
            raise NotFoundError(
                f"Unknown console file {name!r}: expected one of the console's assets such as js/app.js", field="path"
            )
        return _file_response(found)

    return api


def _catalog(catalog: Catalog) -> APIRouter:
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
