"""``POST /v1/models/{name}[/versions/{n}]/embed``: sequence embeddings of an encoder.

For a network that pools padded tokens (an ``embedding`` with ``pad`` and a ``token_pool`` or
recurrent layer), the answer is that pooling layer's output per instance: the sentence vector
the head reads, as sentence-transformers' ``encode`` gives it. A model without one answers
404 on this route. The body is the predict route's JSON (``{"instances": [...]}``, strings
for a text model) with at most ``max_batch_size`` instances; the work runs off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from modelyard.errors import InvalidInstancesError, NotFoundError
from modelyard.serving.limits import parse_json
from modelyard.serving.schemas import ErrorResponse

__all__ = ["add_embed_routes"]


def add_embed_routes(app: FastAPI) -> None:
    """Declare both embed routes on ``app`` (its ``state.models`` and ``state.config``)."""
    errors: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 404, 413, 415, 422)}

    async def run(request: Request, name: str, version: int | None) -> Response:
        config = app.state.config
        served = app.state.models.get(name, version)
        if getattr(served.predictor.network, "pooling_index", None) is None:
            raise NotFoundError(
                f"Model {served.ref} has no embed route: expected a network that pools padded tokens "
                "(an embedding with `pad`, then token_pool or a recurrent layer)",
                field="name",
            )
        payload = parse_json(await request.body(), max_depth=config.max_json_depth)
        count = (
            len(payload["instances"]) if isinstance(payload, dict) and isinstance(payload.get("instances"), list) else 0
        )
        if count > config.max_batch_size:
            raise InvalidInstancesError(
                f"Invalid value for `instances`: expected at most {config.max_batch_size} instances per embed "
                f"request (--max-batch-size), received {count}",
                field="instances",
            )
        features = served.features(served.decode_json(payload))
        vectors = await asyncio.to_thread(served.predictor.embed_tensor, features)
        body = {
            "model": served.name,
            "version": served.version,
            "ref": served.ref,
            "dim": int(vectors.shape[1]),
            "embeddings": vectors.numpy().tolist(),
        }
        return Response(orjson.dumps(body), media_type="application/json")

    async def embed_latest(name: str, request: Request) -> Response:
        return await run(request, name, None)

    async def embed_version(name: str, version: int, request: Request) -> Response:
        return await run(request, name, version)

    for path, endpoint, summary in (
        ("/v1/models/{name}/embed", embed_latest, "Sequence embeddings from the default served version"),
        ("/v1/models/{name}/versions/{version}/embed", embed_version, "Sequence embeddings from one served version"),
    ):
        app.add_api_route(path, endpoint, methods=["POST"], responses=errors, summary=summary)
