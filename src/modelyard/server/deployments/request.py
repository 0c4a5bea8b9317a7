"""The body of ``POST /v1/deployments`` and the options of ``modelyard deployments create``.

Apart from the rows (``store.py``) so that ``deployments create --help``, which prints these
defaults, loads no database layer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from modelyard._validation import StrictModel, parse_object
from modelyard.errors import SpecError
from modelyard.server.retrain.policy import RetrainPolicy
from modelyard.serving.config import ServeConfig
from modelyard.store.refs import NAME_PATTERN

__all__ = ["DeploymentRequest", "RAY_FIELDS"]

_SERVE = ServeConfig.model_fields
RAY_FIELDS = ("num_cpus", "min_replicas", "max_replicas", "target_ongoing_requests")


class DeploymentRequest(StrictModel):
    """Body of ``POST /v1/deployments`` (and the options of ``modelyard deployments create``)."""

    name: str = Field(pattern=NAME_PATTERN, description="deployment name, used in /v1/deployments/NAME/predict")
    model: str = Field(
        min_length=1,
        description="model version: NAME:N, NAME@ALIAS, or NAME (NAME@production, else the newest trained)",
    )
    replicas: int = Field(1, ge=1, le=16)
    # local: supervised `modelyard serve` processes; ray: the replicas of a Ray Serve application (docs/scaling.md).
    engine: Literal["local", "ray"] = "local"
    # engine ray only: CPUs Ray reserves per replica (fractions allowed), and Ray Serve's autoscaling
    # range (default: `replicas`, fixed) and its target of ongoing requests per replica.
    num_cpus: float | None = Field(None, gt=0, le=64)
    min_replicas: int | None = Field(None, ge=1, le=64)
    max_replicas: int | None = Field(None, ge=1, le=64)
    target_ongoing_requests: float | None = Field(None, gt=0, le=10_000)
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

    @model_validator(mode="after")
    def _engine_fields(self) -> DeploymentRequest:
        given = [f for f in RAY_FIELDS if getattr(self, f) is not None]
        if self.engine == "local" and given:
            raise SpecError(
                f"Invalid value for `{given[0]}`: a Ray Serve option, expected with engine 'ray', received engine 'local'",
                field=given[0],
            )
        if self.engine == "ray":
            if self.monitor_sample > 0 or self.retrain is not None:
                what = "monitor_sample" if self.monitor_sample > 0 else "retrain"
                raise SpecError(
                    f"Invalid value for `{what}`: monitoring needs engine 'local' (each replica keeps its own "
                    f"request log), received engine 'ray'",
                    field=what,
                )
            self.ray_options()  # min above max: one line naming both
        return self

    def ray_options(self) -> Any:
        """The ``RayServeOptions`` of an engine ray deployment (``replicas`` when no range is given)."""
        from modelyard.serving.ray_serve import RayServeOptions

        low = self.min_replicas or (
            self.replicas if self.max_replicas is None else min(self.replicas, self.max_replicas)
        )
        values = {"min_replicas": low, "max_replicas": self.max_replicas or max(low, self.replicas)}
        if values["min_replicas"] > values["max_replicas"]:
            raise SpecError(
                f"Invalid value for `min_replicas`: expected at most max_replicas ({values['max_replicas']}), "
                f"received {values['min_replicas']}",
                field="min_replicas",
            )
        values |= {f: getattr(self, f) for f in ("num_cpus", "target_ongoing_requests") if getattr(self, f) is not None}
        return RayServeOptions.make(**values)

    @classmethod
    def parse(cls, body: Any) -> DeploymentRequest:
        return parse_object(cls, body, "a JSON object with name and model")

    def options(self) -> dict[str, Any]:
        """What the row stores beside name, model and replicas: the serve options, ``retrain`` if set, and
        the engine with its options for engine ray (a local row stores what it stored before engines)."""
        skip = {"name", "model", "replicas", *(() if self.retrain else ("retrain",))}
        if self.engine == "local":
            skip |= {"engine", *RAY_FIELDS}
        return self.model_dump(exclude=skip)
