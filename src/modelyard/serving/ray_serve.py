"""Serving on Ray Serve: the ``modelyard serve`` app, unchanged, as the replicas of a Ray Serve deployment.

Each replica is a Ray actor that loads the model versions and mounts the app of
``create_app`` through ``@serve.ingress`` (late-bound: ``__serve_build_asgi_app__`` builds it in
the replica), so the REST API, auth, body and input limits, batching and error answers are
the ones of ``modelyard serve`` byte for byte; Ray Serve's own HTTP proxy (on 127.0.0.1 unless
the config says otherwise) routes requests to replicas and scales them between
``min_replicas`` and ``max_replicas`` on ongoing requests per replica. The requests of a
replica that dies are sent again to another (``ray_retry.py``: in Ray's proxy, and a body
deadline in each replica); tests/unit/serving/test_ray_serve.py kills one under load.

Secure by default as ``ServeConfig`` is: a public proxy host needs an API key. The key travels
to the replicas as an init argument, which Ray keeps in its local cluster state (the cluster is
the operator's own; do not share it with users who must not read the key).
"""

from __future__ import annotations

import importlib
import math
import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, model_validator

from modelyard._validation import StrictModel, spec_error_from
from modelyard.errors import MissingDependencyError, optional_dependency
from modelyard.serving.config import ServeConfig

__all__ = ["RayServeOptions", "deploy", "undeploy", "replica_count", "ray_serve"]


def ray_serve(needed_for: str = "Serving on Ray Serve") -> Any:
    """The ``ray.serve`` module; without it, a one-line error naming ``modelyard[ray]``.

    Ray installed without its serve extra (``ray[train]`` alone) fails inside ``ray.serve`` on a
    package of its own (grpc, aiohttp, ...), which is the same missing extra.
    """
    with optional_dependency("ray", needed_for):
        import ray  # noqa: F401  (not installed at all: the extra's own message)
    try:
        serve = importlib.import_module("ray.serve")
    except ImportError as exc:
        raise MissingDependencyError(
            f"{needed_for} needs Ray Serve (ray[serve]; importing it failed on {exc.name or 'a package'}): "
            f"install it with pip install 'modelyard[ray]'"
        ) from None
    return serve


class RayServeOptions(StrictModel):
    """How Ray Serve runs the replicas: CPUs each, the autoscaling range and its target."""

    num_cpus: float = Field(1.0, gt=0, le=64, description="CPUs Ray reserves per replica (fractions allowed)")
    min_replicas: int = Field(1, ge=1, le=64)
    max_replicas: int = Field(1, ge=1, le=64)
    # Ray's default (5) would cap the batches of modelyard's batcher at 5 rows; its queue limit answers 429 instead.
    max_ongoing_requests: int = Field(64, ge=1, le=65_536, description="requests a replica takes at once")
    target_ongoing_requests: float = Field(2.0, gt=0, le=10_000, description="ongoing requests per replica to aim at")
    upscale_delay_s: float = Field(30.0, ge=0, le=3600)
    downscale_delay_s: float = Field(600.0, ge=0, le=86_400)
    look_back_period_s: float = Field(30.0, gt=0, le=3600, description="window the ongoing requests are averaged over")

    @model_validator(mode="after")
    def _range(self) -> RayServeOptions:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) must be at most max_replicas ({self.max_replicas})")
        return self

    @classmethod
    def make(cls, **values: Any) -> RayServeOptions:
        try:
            return cls(**values)
        except ValidationError as exc:
            raise spec_error_from(exc, prefix="ray") from None

    def deployment_options(self) -> dict[str, Any]:
        """The ``Deployment.options`` Ray Serve takes: fixed replicas when min equals max, else autoscaling."""
        out: dict[str, Any] = {
            "ray_actor_options": {"num_cpus": self.num_cpus},
            "max_ongoing_requests": self.max_ongoing_requests,
        }
        if self.min_replicas == self.max_replicas:
            return out | {"num_replicas": self.min_replicas}
        return out | {
            "autoscaling_config": {
                "min_replicas": self.min_replicas,
                "initial_replicas": self.min_replicas,
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": self.target_ongoing_requests,
                "upscale_delay_s": self.upscale_delay_s,
                "downscale_delay_s": self.downscale_delay_s,
                "look_back_period_s": self.look_back_period_s,
                # Ray wants the window longer than its (deprecated, 10 s) metrics interval: shorter windows
                # shorten the interval with them.
                **({} if self.look_back_period_s > 10 else {"metrics_interval_s": self.look_back_period_s / 2}),
            }
        }


class _Replica:
    """One Ray Serve replica: the models of ``refs`` loaded, the modelyard app built around them."""

    def __init__(self, refs: list[str], config: dict[str, Any], home: str | None, secrets: dict[str, Any]) -> None:
        import torch

        from modelyard.serving.server import build_app

        # A replica uses the CPUs Ray reserved for it (at least one thread), as a uvicorn worker uses its share.
        torch.set_num_threads(max(1, math.floor(config.pop("_num_cpus", 1))))
        self._app = build_app(refs, ServeConfig.make(**config, **secrets), home)

    def __serve_build_asgi_app__(self) -> Any:
        from modelyard.serving.ray_retry import BodyDeadline

        return BodyDeadline(self._app)


#: What a replica needs to open the deploying process's store (passed to it through Ray's runtime_env).
STORE_ENV = ("MODELYARD_DATABASE_URL", "MODELYARD_ARTIFACTS_URL")


def _deployment(name: str) -> Any:
    serve = ray_serve()
    return serve.deployment(serve.ingress()(_Replica), name=name)


def deploy(
    refs: list[str],
    config: ServeConfig,
    options: RayServeOptions,
    *,
    home: str | Path | None = None,
    app_name: str = "modelyard",
    route_prefix: str = "/",
) -> str:
    """Start (or update) the Ray Serve application ``app_name`` serving ``refs``; returns its base URL.

    Needs a Ray cluster (``ray.init`` or ``RAY_ADDRESS``); starts Ray's HTTP proxy on
    ``config.host:config.port`` if Serve is not running yet. Blocks until the replicas are ready.
    """
    serve = ray_serve()

    from modelyard.serving.server import load_predictors

    load_predictors(refs, home)  # an unknown name or damaged weights fail here, once, not in each replica
    from modelyard.serving.ray_retry import CALLBACK_ENV, CALLBACK_PATH

    client = serve.start(  # the proxy resends an idempotent request whose replica died (ray_retry.py)
        http_options={"host": config.host, "port": config.port},
        controller_options={"runtime_env": {"env_vars": {CALLBACK_ENV: CALLBACK_PATH}}},
    )
    secrets = {
        "api_key": config.key(),
        "monitor_webhook_token": None
        if config.monitor_webhook_token is None
        else config.monitor_webhook_token.get_secret_value(),
    }
    settings = config.model_dump(exclude={"api_key", "monitor_webhook_token"}) | {"_num_cpus": options.num_cpus}
    home_arg = None if home is None else str(Path(home).expanduser().resolve())
    deployment_options = options.deployment_options()
    # The replicas open the store this process uses: its database and artifact store, which a Ray worker
    # started before they were set (or on another node) would not know.
    store_env = {name: os.environ[name] for name in STORE_ENV if os.environ.get(name)}
    if store_env:
        deployment_options["ray_actor_options"]["runtime_env"] = {"env_vars": store_env}
    bound = _deployment(app_name).options(**deployment_options).bind(list(refs), settings, home_arg, secrets)
    serve.run(bound, name=app_name, route_prefix=route_prefix)
    # A Serve instance already running keeps its own proxy address: the URL is the one it listens on.
    http = getattr(client, "http_config", None)
    host, port = (config.host, config.port) if http is None else (http.host, http.port)
    return f"http://{host}:{port}{route_prefix.rstrip('/')}"


def undeploy(app_name: str = "modelyard") -> None:
    """Delete the application (its replicas drain and stop); the proxy keeps running."""
    ray_serve().delete(app_name)


def replica_count(app_name: str = "modelyard") -> int:
    """Running replicas of the application, from ``serve.status()``."""
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None:
        return 0
    return sum(d.replica_states.get("RUNNING", 0) for d in app.deployments.values())
