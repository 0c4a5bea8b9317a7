"""The web console: ``GET /`` (the page) and ``GET /console/{file}`` (its assets).

The assets ship inside the package (``modelyard/server/console/``: plain HTML, ES
modules, CSS and the vendored uPlot chart library), so the console works without a
build step and without reaching any CDN. Only files listed at startup are served (a
path from the URL is looked up in that list, never joined onto the disk), and every
answer carries a Content-Security-Policy that allows scripts from this origin only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from modelyard.errors import NotFoundError

__all__ = ["router", "CONSOLE_DIR", "SECURITY_HEADERS"]

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
# CSP allows; 'unsafe-inline' for styles covers the style attributes it writes.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
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


def _file_response(path: Path) -> Response:
    return Response(path.read_bytes(), media_type=_TYPES[path.suffix], headers=SECURITY_HEADERS)


def router(state: Any) -> APIRouter:
    """Routes serving the console page and its assets from the installed package."""
    assets = _asset_table(CONSOLE_DIR)
    api = APIRouter(tags=["console"], include_in_schema=False)

    @api.get("/")
    async def index() -> Response:
        return _file_response(assets["index.html"])

    @api.get("/console/{name:path}")
    async def asset(name: str) -> Response:
        found = assets.get(name or "index.html")
        if found is None:
            raise NotFoundError(
                f"Unknown console file {name!r}: expected one of the console's assets such as js/app.js", field="path"
            )
        return _file_response(found)

    return api
