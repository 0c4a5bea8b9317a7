"""The body of ``POST /v1/deployments`` and the options of ``modelyard deployments create``.

Apart from the rows (``store.py``) so that ``deployments create --help``, which prints these
defaults, loads no database layer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from modelyard._validation import StrictModel, parse_object
from modelyard.serving.config import ServeConfig
from modelyard.store.refs import NAME_PATTERN

__all__ = ["DeploymentRequest"]

_SERVE = ServeConfig.model_fields


class DeploymentRequest(StrictModel):
    """Body of ``POST /v1/deployments`` (and the options of ``modelyard deployments create``)."""

    name: str = Field(pattern=NAME_PATTERN, description="deployment name, used in /v1/deployments/NAME/predict")
    model: str = Field(
        min_length=1,
        description="model version: NAME:N, NAME@ALIAS, or NAME (NAME@production, else the newest trained)",
    )
    replicas: int = Field(1, ge=1, le=16)
    # The batching settings of the replicas' `modelyard serve`: its own fields (default, bounds).
    max_batch_size: int = _SERVE["max_batch_size"]
    max_wait_ms: float = _SERVE["max_wait_ms"]
    backend: Literal["auto", "torch", "onnx"] = _SERVE["backend"]

    @classmethod
    def parse(cls, body: Any) -> DeploymentRequest:
        return parse_object(cls, body, "a JSON object with name and model")

    def options(self) -> dict[str, Any]:
        return {"max_batch_size": self.max_batch_size, "max_wait_ms": self.max_wait_ms, "backend": self.backend}
