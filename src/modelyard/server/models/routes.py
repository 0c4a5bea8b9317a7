"""``/v1/models/{name}/aliases``, the registry's deletes and model cards: what ``modelyard models alias|delete|card``
and ``runs delete`` do.

- ``GET /v1/models/{name}/versions/{version}/card``: the version's model card, the Markdown
  ``modelyard models card NAME:N`` prints (``text/markdown``; ``modelyard.cards``).
- ``GET /v1/models/{name}/aliases``: the aliases of a model and the version each points to.
- ``PUT /v1/models/{name}/aliases/{alias}`` with ``{"version": N}``: create or move it; the
  answer has ``previous`` (the version it pointed to, null when new).
- ``DELETE /v1/models/{name}/aliases/{alias}``: remove it (the version stays).
- ``DELETE /v1/models/{name}/versions/{version}?force=false``: remove a version, refused (409)
  while a deployment names it (``force`` does not override that) or an alias points to it
  (``force`` removes the aliases with it).
- ``DELETE /v1/runs/{run_id}``: remove a finished run, refused while it is queued or running
  or a job will retry it.

Writes need an admin token off loopback like every write (the auth middleware); the store
calls block (SQLite, folders), so they run in the thread pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import Field

from modelyard._documents import load_json
from modelyard._validation import StrictModel, parse_object
from modelyard.cards import model_card
from modelyard.errors import InputError
from modelyard.server.body import read_body
from modelyard.server.models.in_use import deployments_serving, jobs_resuming
from modelyard.store import ModelStore, RunStore

if TYPE_CHECKING:
    from modelyard.server.app import ServerState

__all__ = ["router", "AliasRequest"]

_MAX_BODY_BYTES = 4096


class AliasRequest(StrictModel):
    """Body of ``PUT /v1/models/{name}/aliases/{alias}``."""

    version: int = Field(ge=1, le=999_999_999, strict=True, description="the version of the model the alias points to")


async def _alias_request(request: Request) -> AliasRequest:
    body = load_json(await read_body(request, _MAX_BODY_BYTES) or b"null", InputError, "request body")
    return parse_object(AliasRequest, body, 'a JSON object such as {"version": 3}', root="body")


def _deleted(store: ModelStore, ref: str, force: bool) -> dict[str, Any]:
    gone = store.delete(ref, force=force, in_use=deployments_serving)
    return gone.to_dict() | {"derived": [v.ref for v in store.derived(gone.ref)]}


def router(state: ServerState) -> APIRouter:
    """The registry's write routes over the store ``state.home``."""
    api = APIRouter(prefix="/v1", tags=["registry"])
    store, runs = ModelStore(state.home), RunStore(state.home)

    @api.get(
        "/models/{name}/versions/{version}/card",
        summary="The version's model card (Markdown): data, spec, metrics, history, lineage, compression, privacy",
        response_class=Response,
        responses={200: {"content": {"text/markdown": {}}}},
    )
    async def card(name: str, version: int) -> Response:
        text = await run_in_threadpool(model_card, state.home, f"{name}:{version}")
        return Response(text, media_type="text/markdown; charset=utf-8")

    @api.get("/models/{name}/aliases", summary="The aliases of a model and the version each points to")
    async def list_aliases(name: str) -> dict[str, Any]:
        found = await run_in_threadpool(store.aliases, name)
        return {"aliases": [a.to_dict() for a in found]}

    @api.put("/models/{name}/aliases/{alias}", summary="Point NAME@ALIAS at a version (create or move it)")
    async def set_alias(name: str, alias: str, request: Request) -> dict[str, Any]:
        body = await _alias_request(request)
        moved = await run_in_threadpool(store.set_alias, f"{name}:{body.version}", alias)
        return moved.to_dict()

    @api.delete("/models/{name}/aliases/{alias}", summary="Remove an alias (its version stays)")
    async def delete_alias(name: str, alias: str) -> dict[str, Any]:
        return (await run_in_threadpool(store.delete_alias, name, alias)).to_dict()

    @api.delete(
        "/models/{name}/versions/{version}",
        summary="Delete a version; refused while a deployment serves it, or an alias points to it (unless force)",
    )
    async def delete_version(name: str, version: int, force: bool = False) -> dict[str, Any]:
        return await run_in_threadpool(_deleted, store, f"{name}:{version}", force)

    @api.delete("/runs/{run_id}", summary="Delete a finished run (row, metrics, folder); its model version stays")
    async def delete_run(run_id: str) -> dict[str, Any]:
        gone = await run_in_threadpool(lambda: runs.delete(run_id, in_use=jobs_resuming))
        return gone.to_dict()

    return api
