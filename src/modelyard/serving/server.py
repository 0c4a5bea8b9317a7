"""Run the app under uvicorn: one process, or ``workers`` forked processes.

SIGTERM (and Ctrl-C) drain: uvicorn stops accepting connections, waits up to
``timeout_s + 5`` s for in-flight requests to be answered, then the app's lifespan shutdown
drains each model's batch queue before the process exits.

With ``workers > 1`` uvicorn needs an import string, so the models and settings travel to
the workers through environment variables (``app_factory`` reads them back) and each
worker loads the models itself and uses ``cpu_count // workers`` torch threads.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelyard.errors import SpecError, optional_dependency
from modelyard.ports import check_port
from modelyard.serving.auth import ENV_VAR as API_KEY_ENV
from modelyard.serving.config import WEBHOOK_TOKEN_ENV, ServeConfig

__all__ = ["load_predictors", "build_app", "app_factory", "run"]

log = logging.getLogger(__name__)

_REFS_ENV = "MODELYARD_SERVE_REFS"
_CONFIG_ENV = "MODELYARD_SERVE_CONFIG"
_HOME_ENV = "MODELYARD_SERVE_HOME"


def load_predictors(refs: Sequence[Any], home: str | Path | None = None) -> list[Any]:
    """``"name"``/``"name:N"`` references (or ready Predictors) → Predictors on the CPU."""
    if not refs:
        raise SpecError("Nothing to serve: expected at least one model reference such as fashion-mlp:1", field="models")
    return [ref if not isinstance(ref, str) else _load(ref, home) for ref in refs]


def _load(ref: str, home: str | Path | None) -> Any:
    """A model version's Predictor, or the VoicePipeline of a registered pipeline of that name."""
    from modelyard.predict import Predictor
    from modelyard.store.pipelines import PipelineStore

    name = ref.split(":", 1)[0].split("@", 1)[0]
    if PipelineStore(home).exists(name):
        from modelyard.store.models import ModelStore

        if name in ModelStore(home).names():
            raise SpecError(
                f"Invalid value for `models`: {name!r} is both a model and a pipeline; rename one of them",
                field="models",
            )
        from modelyard.voice.pipeline import VoicePipeline

        return VoicePipeline.load(ref, home=home)
    return Predictor.load(ref, home=home)


def build_app(refs: Sequence[Any], config: ServeConfig, home: str | Path | None = None) -> Any:
    """The app of a server process, with its long-lived objects frozen out of the GC.

    Everything loaded by now (torch, the models, FastAPI) lives as long as the process;
    ``gc.freeze()`` keeps the cyclic collector from re-scanning it, which otherwise pauses
    the event loop for tens of milliseconds every few thousand requests (p99 latency).
    """
    with optional_dependency("serve", "The prediction server"):
        from modelyard.serving.app import create_app

    app = create_app(load_predictors(refs, home), config)
    app.state.data_access = config.data_access(home)  # what explanations may read (their background sample)
    gc.collect()
    gc.freeze()
    return app


def app_factory() -> Any:
    """uvicorn's factory in each worker process: settings from the environment."""
    import torch

    config = ServeConfig.make(
        **json.loads(os.environ[_CONFIG_ENV]),
        api_key=os.environ.get(API_KEY_ENV) or None,
        monitor_webhook_token=os.environ.get(WEBHOOK_TOKEN_ENV) or None,
    )
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // config.workers))
    return build_app(json.loads(os.environ[_REFS_ENV]), config, os.environ.get(_HOME_ENV) or None)


def _uvicorn_options(config: ServeConfig) -> dict[str, Any]:
    from modelyard.serving.slow_clients import HEADER_TIMEOUT_ENV, protocol_class

    os.environ[HEADER_TIMEOUT_ENV] = str(config.header_timeout_s)  # read by each (worker) process's protocol
    return {
        "http": protocol_class(),
        "host": config.host,
        "port": config.port,
        "log_level": config.log_level,
        "lifespan": "on",
        "timeout_graceful_shutdown": int(config.timeout_s) + 5,
        "server_header": False,
    }


def run(
    refs: Sequence[Any],
    config: ServeConfig,
    home: str | Path | None = None,
    *,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; blocks.

    The port, then every model (its weights' checksums included), are checked before
    ``on_ready`` is called, so an address is announced only when it is served: with one
    process after uvicorn has started (lifespan warm-up done, socket listening); with
    workers after the parent has loaded each model once.
    """
    with optional_dependency("serve", "The prediction server"):
        import uvicorn

    check_port(config.host, config.port, "serve.port")
    if config.workers == 1:
        app = build_app(refs, config, home)

        class _Server(uvicorn.Server):
            async def startup(self, sockets: list[Any] | None = None) -> None:
                await super().startup(sockets)
                if self.started and on_ready is not None:
                    on_ready()

        _Server(uvicorn.Config(app, **_uvicorn_options(config))).run()
        return
    if not all(isinstance(r, str) for r in refs):
        raise SpecError(
            "Invalid value for `serve.workers`: several workers load models by reference; "
            "expected name[:N] strings, received Predictor objects",
            field="serve.workers",
        )
    # An unknown name or damaged weights fail here, once, not in every worker (which each load
    # their own copy: uvicorn spawns them).
    load_predictors(refs, home)
    gc.collect()
    os.environ[_REFS_ENV] = json.dumps(list(refs))
    os.environ[_CONFIG_ENV] = json.dumps(config.model_dump(exclude={"api_key", "monitor_webhook_token"}))
    if home is not None:
        os.environ[_HOME_ENV] = str(Path(home).expanduser().resolve())
    if config.api_key is not None:
        os.environ[API_KEY_ENV] = config.key() or ""
    if config.monitor_webhook_token is not None:
        os.environ[WEBHOOK_TOKEN_ENV] = config.monitor_webhook_token.get_secret_value()
    if on_ready is not None:
        on_ready()
    uvicorn.run(
        "modelyard.serving.server:app_factory", factory=True, workers=config.workers, **_uvicorn_options(config)
    )
