"""The predict routes as a pure ASGI handler: the server's hot path.

``POST /v1/models/{name}/predict`` and ``/v1/models/{name}/versions/{n}/predict`` are
answered here, in front of FastAPI's router: no Request object, dependency solving or
response model per call. That halves the per-request CPU time, which is what a Python
server spends when the model itself runs batched. FastAPI still declares both routes,
so they are in the OpenAPI document, and every other route goes through FastAPI.

Decoding by content type: JSON, PNG/JPEG or WAV/FLAC bodies, and multipart uploads of such
files (images or recordings, as the model takes: a network starting with a logmel/mfcc layer
takes audio). Classifiers take ``?top_k=N&min_confidence=P`` and image models ``?heatmap=METHOD``
on any content type (serving/ranking.py). Nothing else is decoded (415), so no pickle or other code-executing format is
reachable.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from modelyard.errors import (
    InvalidInstancesError,
    MalformedRequestError,
    ModelyardError,
    UnsupportedMediaTypeError,
)
from modelyard.http_errors import error_answer
from modelyard.serving.config import ServeConfig
from modelyard.serving.limits import parse_json

__all__ = ["PredictRoutes", "LATEST_ROUTE", "VERSION_ROUTE"]

log = logging.getLogger(__name__)

LATEST_ROUTE = "/v1/models/{name}/predict"
VERSION_ROUTE = "/v1/models/{name}/versions/{version}/predict"
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg")
_AUDIO_TYPES = ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/flac", "audio/x-flac")
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Disconnected(Exception):
    """The client went away before sending its whole body: nobody to answer."""


def _route_path(scope: dict[str, Any]) -> str:
    """The path below the app's mount point (``root_path``: a Ray Serve route prefix), as Starlette routes it."""
    path, root = scope["path"], scope.get("root_path", "")
    return (path[len(root) :] or "/") if root and path.startswith(root) else path


def _match(path: str) -> tuple[str, str | None] | None:
    """``(name, version-or-None)`` for the two predict paths, else None."""
    parts = path.split("/")
    if len(parts) == 5 and parts[1] == "v1" and parts[2] == "models" and parts[4] == "predict" and parts[3]:
        return parts[3], None
    if (
        len(parts) == 7
        and parts[1] == "v1"
        and parts[2] == "models"
        and parts[4] == "versions"
        and parts[6] == "predict"
        and parts[3]
        and parts[5]
    ):
        return parts[3], parts[5]
    return None


class PredictRoutes:
    """ASGI middleware answering the predict routes; everything else passes through."""

    def __init__(self, app: Any, *, models: Any, config: ServeConfig, routes: dict[str, Any], slots: Any) -> None:
        self.app = app
        self.slots = slots  # the explain routes' ExplainSlots, for ?heatmap=
        self.models = models
        self.config = config
        self.routes = routes  # template → FastAPI route, so metrics label requests like FastAPI would

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        found = _match(_route_path(scope)) if scope["type"] == "http" and scope["method"] == "POST" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        name, version = found
        scope["route"] = self.routes[VERSION_ROUTE if version is not None else LATEST_ROUTE]
        scope["path_params"] = {"name": name} if version is None else {"name": name, "version": version}
        headers: list[tuple[bytes, bytes]] = []
        started = time.monotonic()
        try:
            model = self.models.get(name, _version(version), pipelines=True)
            ranking = model.ranking(scope.get("query_string", b""))  # before the body: a bad option costs nothing
            raw = await self._decode(model, scope, receive)
            answer = await model.predict(model.features(raw), ranking)
            if ranking is not None and ranking.heatmap is not None:
                await model.add_heatmaps(answer, raw, ranking.heatmap, self.slots, started=started)
            status, body = 200, orjson.dumps(answer)  # finite by construction (codec, heatmaps base64)
        except ModelyardError as exc:
            status, headers, body = error_answer(exc)
        except StarletteHTTPException as exc:  # multipart limits (too many files or fields)
            _, headers, body = error_answer(MalformedRequestError(str(exc.detail)))
            status = exc.status_code
        except _Disconnected:
            return
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *headers],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _decode(self, model: Any, scope: dict[str, Any], receive: Any) -> Any:
        """The body's raw instances (a numpy batch), as the model takes them before its preprocessing."""
        ctype = _content_type(scope)
        config = self.config
        if ctype == "application/json":
            return model.decode_json(parse_json(await _body(receive), max_depth=config.max_json_depth))
        if ctype in _IMAGE_TYPES:
            return model.decode_images([("upload", await _body(receive))])
        if ctype in _AUDIO_TYPES:
            return model.decode_audio([("upload", await _body(receive))])
        if ctype == "multipart/form-data":
            from starlette.datastructures import UploadFile

            async with Request(scope, receive).form(
                max_files=config.max_batch_size, max_fields=config.max_batch_size
            ) as form:
                files = [
                    (f"{key}={value.filename or 'upload'}", await value.read())
                    for key, value in form.multi_items()
                    if isinstance(value, UploadFile)
                ]
            if not files:
                raise MalformedRequestError(
                    "Multipart upload without a file: expected one or more PNG/JPEG or WAV/FLAC file fields"
                )
            return model.decode_audio(files) if model.sample_rate is not None else model.decode_images(files)
        raise UnsupportedMediaTypeError(
            f"Unsupported Content-Type {ctype!r}: expected application/json, image/png, image/jpeg, audio/wav, "
            "audio/flac or multipart/form-data"
        )


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit():
        raise InvalidInstancesError(
            f"Invalid value for `version` in the path: expected a positive integer, received {text!r}", field="version"
        )
    return int(text)


def _content_type(scope: dict[str, Any]) -> str:
    for key, value in scope["headers"]:
        if key == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return "application/json"  # curl --data-binary without -H, most scripts: assume JSON


async def _body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)
