"""The prediction server: ``modelyard serve NAME[:N] ...`` or ``modelyard.serve([...])``.

    import modelyard
    modelyard.serve(["fashion-mlp", "fashion-cnn:2"], port=8000)   # blocks until SIGTERM

``create_app`` builds the FastAPI app without running it (tests, embedding in another
ASGI server); ``DynamicBatcher`` is usable on its own.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelyard._lazy import lazy_attributes as _lazy_attributes
from modelyard.serving.config import WEBHOOK_TOKEN_ENV, ServeConfig

__all__ = ["serve", "serve_config", "create_app", "ServeConfig", "DynamicBatcher"]


def serve_config(*, api_key: str | None = None, api_key_file: str | Path | None = None, **settings: Any) -> ServeConfig:
    """Validated settings: ``settings`` are ``ServeConfig`` fields (its defaults for those left
    out); the API key is ``api_key``, else the first line of ``api_key_file``, else
    ``$MODELYARD_API_KEY`` (required when ``host`` is not loopback). The alert webhook's
    token, unless given, is ``$MODELYARD_MONITOR_WEBHOOK_TOKEN``."""
    from modelyard.serving.auth import resolve_api_key

    key = api_key if api_key is not None else resolve_api_key(api_key_file)
    if settings.get("monitor_webhook_token") is None and os.environ.get(WEBHOOK_TOKEN_ENV):
        settings["monitor_webhook_token"] = os.environ[WEBHOOK_TOKEN_ENV]
    return ServeConfig.make(api_key=key, **settings)


def serve(models: str | Sequence[Any], *, home: str | Path | None = None, **settings: Any) -> None:
    """Serve model versions over HTTP until SIGTERM/Ctrl-C (drains in-flight requests).

    ``models``: ``"name"`` (latest version), ``"name:N"``, or Predictor objects.
    ``settings``: ``ServeConfig`` fields (host, port, max_batch_size, max_wait_ms, max_queue,
    timeout_s, workers, backend, max_body_bytes, ...) and ``api_key`` or ``api_key_file``.
    """
    from modelyard.serving.server import run

    run([models] if isinstance(models, str) else list(models), serve_config(**settings), home)


# Lazy: importing modelyard.serving must not import FastAPI/torch until they are used.
__getattr__, __dir__ = _lazy_attributes(
    globals(), {"create_app": "modelyard.serving.app", "DynamicBatcher": "modelyard.serving.batcher"}
)
