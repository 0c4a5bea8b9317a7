"""``POST /v1/models/{name}/explain`` and ``/v1/models/{name}/versions/{n}/explain``.

Bodies are decoded like the predict routes (strict JSON with a depth limit, PNG/JPEG
bodies, multipart uploads; shape and finiteness checked by ``codec``), then the
explanation runs in the app's ``ExplainSlots`` (explain_slots.py: one per model at a time, a
bounded queue, a worker thread, a cost cap), and a request holds at most ``max_instances``
instances (413): an explanation costs tens to thousands of forward passes per instance.

Text models take ``{"instances": ["a sentence", ...]}`` (at most ``max_text_chars`` each, as
for predictions) and answer with one attribution per token (``explaining/text.py``).

Options come from the JSON body (``{"instances", "method", "target", "top", "steps"}``)
or, for image uploads, from the query string (``?method=saliency&target=Dress``).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from modelyard.errors import (
    BodyTooLargeError,
    InvalidInstancesError,
    MalformedRequestError,
    UnsupportedMediaTypeError,
)
from modelyard.serving.codec import image_array, instances_array, text_array
from modelyard.serving.explain_slots import ExplainSlots
from modelyard.serving.limits import parse_json
from modelyard.serving.schemas import ErrorResponse

__all__ = ["add_explain_routes", "MAX_INSTANCES"]

MAX_INSTANCES = 32
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg")


class ExplainRequest(BaseModel):
    instances: list[Any] = Field(
        ..., description="Raw samples, each of the model's `input_shape`; strings for text models"
    )
    method: str = Field("integrated_gradients", description="integrated_gradients (ig), saliency, shap or lime")
    target: int | str | None = Field(None, description="Output index or class name; default the predicted class")
    top: int = Field(10, description="Features listed in `top_features` (tabular models)")
    steps: int = Field(50, description="Integration points for integrated gradients")


class ExplainResponse(BaseModel):
    model: str
    version: int
    ref: str
    method: str
    task: str
    explained_output: str
    details: dict[str, Any]
    explanations: list[dict[str, Any]] = Field(
        ...,
        description=(
            "Per instance: target, label, output, attribution_sum, baseline_output (IG, SHAP), convergence_delta (IG), "
            "attributions (raw input shape), top_features [{feature, value, contribution}] (tabular) or heatmap_png "
            "(base64 PNG, image models); text models: text, tokens [{token, id, start, end, special, attribution}] "
            "(start/end: character offsets into text) and attributions per token"
        ),
    )


_REQUEST_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": ExplainRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def add_explain_routes(app: FastAPI, *, max_instances: int = MAX_INSTANCES) -> None:
    """Declare both explain routes on ``app`` (its ``state.models`` and ``state.config``)."""
    app.state.explain_slots = ExplainSlots(app)
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (400, 404, 413, 415, 422, 503)
    }

    async def run(request: Request, name: str, version: int | None) -> Response:
        from modelyard.explaining.api import ExplainOptions

        config = app.state.config
        deadline = time.monotonic() + config.timeout_s  # queue + work, as for predictions
        served = app.state.models.get(name, version)
        raw, fields = await _decode(request, served, config, max_instances)
        options = ExplainOptions.make(**fields).model_dump()  # unknown or invalid fields: 422 naming them
        result = await app.state.explain_slots.explain(served, raw, options, deadline)
        body = {
            "model": served.name,
            "version": served.version,
            "ref": served.ref,
            **{k: v for k, v in result.to_dict().items() if k != "model"},
        }
        return Response(_dumps(body), media_type="application/json")

    async def explain_latest(name: str, request: Request) -> Response:
        return await run(request, name, None)

    async def explain_version(name: str, version: int, request: Request) -> Response:
        return await run(request, name, version)

    for path, endpoint, summary in (
        ("/v1/models/{name}/explain", explain_latest, "Explain the latest served version's outputs"),
        ("/v1/models/{name}/versions/{version}/explain", explain_version, "Explain one served version's outputs"),
    ):
        app.add_api_route(
            path,
            endpoint,
            methods=["POST"],
            response_model=ExplainResponse,
            responses=errors,
            openapi_extra=_REQUEST_DOC,
            summary=summary,
        )


async def _decode(request: Request, served: Any, config: Any, max_instances: int) -> tuple[np.ndarray, dict[str, Any]]:
    """Raw instances and the options (query string, then JSON body fields) of a request."""
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    # Query strings carry text: whole numbers become ints here, so that the options stay strictly typed
    # for JSON bodies ("steps": "10" and "steps": true are refused there).
    options: dict[str, Any] = {
        key: int(value) if key in ("steps", "top") and value.isdigit() else value
        for key, value in request.query_params.items()
    }
    if ctype == "application/json":
        payload = parse_json(await request.body(), max_depth=config.max_json_depth)
        if not isinstance(payload, dict):
            raise InvalidInstancesError(
                'Invalid request body: expected a JSON object {"instances": [...], "method": ...}'
            )
        options.update({k: v for k, v in payload.items() if k != "instances"})
        instances = payload.get("instances")
        if isinstance(instances, list) and len(instances) > max_instances:
            raise _too_many(len(instances), max_instances)
        body = {"instances": instances} if "instances" in payload else {}
        if getattr(served, "text", False):  # strings: at most max_text_chars each, tokenized by the explainer
            raw = text_array(body, max_chars=config.max_text_chars)
        else:
            raw = instances_array(body, served.input_shape, served.input_dtype)
    elif getattr(served, "text", False):
        raise UnsupportedMediaTypeError(
            f"Unsupported Content-Type {ctype!r} for text model {served.ref}: expected application/json "
            '{"instances": ["a sentence", ...]}'
        )
    elif ctype in _IMAGE_TYPES:
        raw = image_array(
            await request.body(), served.input_shape, source="upload", max_pixels=config.max_image_pixels
        )[None]
    elif ctype == "multipart/form-data":
        from starlette.datastructures import UploadFile

        async with request.form(max_files=max_instances, max_fields=max_instances) as form:
            files = [
                (f"{key}={value.filename or 'upload'}", await value.read())
                for key, value in form.multi_items()
                if isinstance(value, UploadFile)
            ]
        if not files:
            raise MalformedRequestError("Multipart upload without a file: expected one or more PNG/JPEG file fields")
        raw = np.stack(
            [
                image_array(data, served.input_shape, source=source, max_pixels=config.max_image_pixels)
                for source, data in files
            ]
        )
    else:
        raise UnsupportedMediaTypeError(
            f"Unsupported Content-Type {ctype!r}: expected application/json, image/png, image/jpeg or multipart/form-data"
        )
    if len(raw) > max_instances:
        raise _too_many(len(raw), max_instances)
    return raw, options


def _too_many(received: int, limit: int) -> BodyTooLargeError:
    return BodyTooLargeError(
        f"Too many instances to explain: expected at most {limit} per request, received {received}; "
        f"send them in smaller requests",
        field="instances",
    )


def _dumps(body: dict[str, Any]) -> bytes:
    """Strict JSON; a model that produced NaN/Infinity gets null there instead of a 500."""
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        return json.dumps(_finite(body), separators=(",", ":"), allow_nan=False).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
