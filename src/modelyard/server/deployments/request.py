"""The body of ``POST /v1/deployments`` and the options of ``modelyard deployments create``.

Apart from the rows (``store.py``) so that ``deployments create --help``, which prints these
defaults, loads no database layer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from modelyard._validation import StrictModel, parse_object
from modelyard.server.retrain.policy import RetrainPolicy
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
    # Monitoring of the replicas (docs/monitoring.md): the share of predict requests each logs (0: off),
    # the instances per check and the log's size, as `modelyard serve --monitor-*`.
    monitor_sample: float = _SERVE["monitor_sample"]
    monitor_window: int = _SERVE["monitor_window"]
    monitor_capacity: int = _SERVE["monitor_capacity"]
    # Alerts of these checks queue a retraining job of the version's stored spec (server/retrain).
    retrain: RetrainPolicy | None = None

    @classmethod
    def parse(cls, body: Any) -> DeploymentRequest:
        return parse_object(cls, body, "a JSON object with name and model")

    def options(self) -> dict[str, Any]:
        """What the row stores beside name, model and replicas: the serve options, and ``retrain`` if set."""
        return self.model_dump(exclude={"name", "model", "replicas", *(() if self.retrain else ("retrain",))})
