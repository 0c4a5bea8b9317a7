"""The control plane (``modelyard server``): REST API, training jobs, deployments, web console.

    from modelyard.server import ServerConfig, create_server_app, serve
    serve(ServerConfig(port=8080, workers=2))          # blocks until SIGTERM

Modules load on first use, so importing this package starts nothing and imports no torch.
"""

from __future__ import annotations

from modelyard._lazy import lazy_attributes as _lazy_attributes

__all__ = ["ServerConfig", "ServerState", "create_server_app", "serve", "JobStore", "TokenStore"]

__getattr__, __dir__ = _lazy_attributes(
    globals(),
    {
        "ServerConfig": "modelyard.server.config",
        "ServerState": "modelyard.server.app",
        "create_server_app": "modelyard.server.app",
        "serve": "modelyard.server.run",
        "JobStore": "modelyard.server.jobs.store",
        "TokenStore": "modelyard.server.auth.tokens",
    },
)
