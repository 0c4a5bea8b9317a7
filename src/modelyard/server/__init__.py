"""The control plane (``modelyard server``): REST API, training jobs, deployments, web console.

    from modelyard.server import ServerConfig, create_server_app, serve
    serve(ServerConfig(port=8080, workers=2))          # blocks until SIGTERM

Modules load on first use, so importing this package starts nothing and imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["ServerConfig", "ServerState", "create_server_app", "serve", "JobStore", "TokenStore"]

_LAZY = {
    "ServerConfig": ("modelyard.server.config", "ServerConfig"),
    "ServerState": ("modelyard.server.app", "ServerState"),
    "create_server_app": ("modelyard.server.app", "create_server_app"),
    "serve": ("modelyard.server.run", "serve"),
    "JobStore": ("modelyard.server.jobs.store", "JobStore"),
    "TokenStore": ("modelyard.server.auth.tokens", "TokenStore"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'modelyard.server' has no attribute {name!r}")
    module, attr = _LAZY[name]
    return getattr(importlib.import_module(module), attr)
