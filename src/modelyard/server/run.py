"""Run the control plane under uvicorn until SIGTERM or Ctrl-C.

On SIGTERM/SIGINT uvicorn stops accepting connections, gives open requests (and event
streams) a few seconds, then the app's lifespan stops the deployment supervisor, the
reaper and the worker pool; each worker hands its running job back to the queue, and
the next start resumes it from its last checkpoint. Queued jobs are rows in the store,
so a restart loses none.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from modelyard.errors import optional_dependency
from modelyard.ports import check_port
from modelyard.server.auth.tokens import TokenStore
from modelyard.server.config import ServerConfig
from modelyard.server.tables import control_database

__all__ = ["serve", "bootstrap_token"]

GRACEFUL_SHUTDOWN_S = 5


def bootstrap_token(config: ServerConfig) -> str | None:
    """On a non-loopback bind with no token yet: create an admin token and return it (once)."""
    if config.loopback:
        return None
    tokens = TokenStore(config.store_home())
    if tokens.any():
        return None
    _info, token = tokens.create("admin", "bootstrap-admin")
    return token


def serve(config: ServerConfig, *, echo: Callable[[str], None] | None = None) -> None:
    """Serve the REST API, the console and the training workers; blocks until stopped."""
    with optional_dependency("serve", "The control plane"):
        import uvicorn

        from modelyard.server.app import create_server_app

    say = echo or (lambda text: print(text, flush=True))
    check_port(config.host, config.port, "server.port")
    # A damaged or mismatched store is a one-line StoreError now, not a traceback from uvicorn's lifespan.
    control_database(config.store_home())
    token = bootstrap_token(config)
    if token is not None:
        say(f"created admin token (shown once, store it now): {token}")
        say("  clients send `Authorization: Bearer <token>`; make more with `modelyard server token create`")
    app = create_server_app(config)
    auth = "tokens required" if app.state.server.auth.required else "open to this machine (loopback, no tokens)"
    say(
        f"modelyard server on {config.url()}  store {config.store_home()}  "
        f"{config.workers} training worker(s)  auth: {auth}"
    )
    from modelyard.serving.slow_clients import HEADER_TIMEOUT_ENV, protocol_class

    os.environ[HEADER_TIMEOUT_ENV] = str(config.header_timeout_s)  # slowloris: the same deadline as `serve`
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http=protocol_class(),
            host=config.host.strip("[]"),
            port=config.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            server_header=False,
        )
    )
    server.run()
    if not server.started:
        sys.exit(1)
