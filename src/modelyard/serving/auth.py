"""Bearer API keys: where the key comes from and the middleware that checks it.

The key comes from ``--api-key-file`` (first line of the file) or ``MODELYARD_API_KEY``.
When one is configured every route needs ``Authorization: Bearer <key>`` except the
liveness and readiness probes. Keys are compared in constant time (``hmac.compare_digest``).
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelyard.errors import SpecError, UnauthorizedError
from modelyard.http_errors import send_error

__all__ = ["ENV_VAR", "OPEN_PATHS", "resolve_api_key", "BearerAuthMiddleware"]

ENV_VAR = "MODELYARD_API_KEY"
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
MIN_KEY_LENGTH = 16


def resolve_api_key(api_key_file: str | Path | None = None, *, environ: Mapping[str, str] | None = None) -> str | None:
    """The key from the file if given, else from ``MODELYARD_API_KEY``, else None."""
    if api_key_file is not None:
        path = Path(api_key_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"Cannot read the API key file {path}: {exc}", field="api_key_file") from None
        key, source = (text.splitlines() or [""])[0].strip(), f"the file {path}"
    else:
        key = (environ if environ is not None else os.environ).get(ENV_VAR, "").strip()
        if not key:
            return None
        source = f"${ENV_VAR}"
    if len(key) < MIN_KEY_LENGTH:
        raise SpecError(
            f"Invalid API key in {source}: expected at least {MIN_KEY_LENGTH} characters, received {len(key)}",
            field="api_key",
        )
    return key


class BearerAuthMiddleware:
    """401 unless the request carries the configured bearer token (probes stay open)."""

    def __init__(self, app: Any, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode("utf-8")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), None)
        if header is None:
            problem = "Missing API key: expected an `Authorization: Bearer <key>` header"
        else:
            scheme, _, token = header.partition(b" ")
            if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._key):
                await self.app(scope, receive, send)
                return
            problem = "Invalid API key: expected `Authorization: Bearer <key>` with the server's key"
        await send_error(send, UnauthorizedError(problem))
