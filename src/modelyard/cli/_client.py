"""``--url`` and ``--token`` of the commands that talk to a running `modelyard server`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from modelyard.cli._options import deferred_option

__all__ = ["server_options"]


def server_options(*, timeout_s: float | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Adds --url/--token and calls the command with a connected ``ServerClient`` first.

    ``timeout_s``: how long one request may take (a deployment delete waits for its replicas
    to drain); None keeps the client's own default.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @deferred_option(
            "--url",
            envvar="MODELYARD_SERVER_URL",
            default_from="modelyard.server.client:DEFAULT_URL",
            metavar="URL",
            help="The control plane (env MODELYARD_SERVER_URL).",
        )
        @click.option(
            "--token",
            envvar="MODELYARD_TOKEN",
            default=None,
            metavar="TOKEN",
            help="Bearer token (env MODELYARD_TOKEN).",
        )
        @functools.wraps(func)
        def wrapper(*args: Any, url: str | None, token: str | None, **kwargs: Any) -> Any:
            from modelyard.errors import optional_dependency

            with optional_dependency("serve", "The control plane client"):
                from modelyard.server.client import ServerClient

            options = {} if timeout_s is None else {"timeout_s": timeout_s}
            with ServerClient(url, token, **options) as api:
                return func(api, *args, **kwargs)

        return wrapper

    return decorate
