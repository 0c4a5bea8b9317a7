"""Pydantic models of the REST bodies, for the OpenAPI document at ``/docs``.

Requests are parsed by ``limits.parse_json`` + ``codec`` (strict JSON, depth limit, model
shape checks), not by these models; responses are built as plain JSON for speed. These
classes describe both exactly so ``/openapi.json`` is a truthful contract.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "PredictRequest",
    "Prediction",
    "PredictResponse",
    "ErrorResponse",
    "ModelInfo",
    "ModelList",
    "PREDICT_REQUEST_DOC",
]


class PredictRequest(BaseModel):
    instances: list[Any] = Field(
        ..., description="Raw samples, each of the model's `input_shape` (see GET /v1/models)", examples=[[[0.0, 1.0]]]
    )


class Prediction(BaseModel):
    label: str | int | None = Field(None, description="Classifiers: the predicted class (null if outputs were NaN/Inf)")
    probabilities: list[float | None] | None = Field(None, description="Classifiers: one probability per class")
    value: list[float | None] | None = Field(None, description="Regression: the predicted values")
    top: list[dict[str, Any]] | None = Field(
        None, description="With ?top_k=N: the N most probable classes, [{label, probability}], most probable first"
    )
    rejected: bool | None = Field(
        None, description="With ?min_confidence=P: true when no class reaches P (then `label` is null)"
    )
    heatmap_png: str | None = Field(
        None, description="With ?heatmap=METHOD (image models): base64 PNG of the attributions for the predicted class"
    )


class PredictResponse(BaseModel):
    model: str
    version: int = Field(..., description="The model version that answered")
    ref: str
    backend: str = Field(..., description="torch or onnx")
    predictions: list[Prediction]
    warnings: list[str] = Field(default_factory=list, description="E.g. non-finite model outputs returned as null")
    request_id: str | None = Field(None, description="Set when the request was logged (--monitor-sample): for feedback")
    heatmap: dict[str, Any] | None = Field(None, description="With ?heatmap=METHOD: {method, explained_output}")


class ErrorResponse(BaseModel):
    error: str = Field(..., description="Error class, e.g. InvalidInstancesError")
    message: str = Field(..., description="One line: what was expected and what was received")
    field: str | None = None


class ModelInfo(BaseModel):
    name: str
    version: int
    ref: str
    latest: bool
    task: str
    input_schema: dict[str, Any]
    backend: dict[str, Any]
    batching: dict[str, Any] | None = None  # models; a voice pipeline runs one utterance at a time
    stages: dict[str, str] | None = None  # voice pipelines: what runs each stage (docs/voice.md)
    endpoints: list[str]


class ModelList(BaseModel):
    models: list[ModelInfo]


PREDICT_REQUEST_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": "top_k",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1},
            "description": "Classifiers: list the k most probable classes per instance in `top`",
        },
        {
            "name": "min_confidence",
            "in": "query",
            "required": False,
            "schema": {"type": "number", "minimum": 0, "maximum": 1},
            "description": "Classifiers: reject (label null, rejected true) an instance whose best class is below it",
        },
        {
            "name": "heatmap",
            "in": "query",
            "required": False,
            "schema": {"type": "string", "enum": ["integrated_gradients", "ig", "saliency", "true"]},
            "description": "Image models: add heatmap_png (the method's attributions for the predicted class) to each "
            "prediction; the explain route's queue, timeout and --max-explain-cost apply",
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": PredictRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "description": "One or more PNG/JPEG (image models) or WAV/FLAC files (audio models; any field "
                    "name), one instance each",
                }
            },
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "audio/wav": {"schema": {"type": "string", "format": "binary"}},
            "audio/flac": {"schema": {"type": "string", "format": "binary"}},
        },
    },
}
