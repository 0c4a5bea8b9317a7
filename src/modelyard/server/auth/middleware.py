"""Who may do what: one ASGI middleware in front of every route of the control plane.

Rules (docs/server.md, "Auth"):
- Host header must name the server (bound host, localhost, 127.0.0.1, plus the port):
  else 400, against DNS rebinding. Writes whose Origin is not the server's own (or an
  allowed origin) get 403. Both apply on loopback too.
- Auth is required unless the server is bound to loopback and no token exists. Then
  GET/HEAD/OPTIONS need a ``read`` or ``admin`` token, every other method ``admin``.
- A token comes as ``Authorization: Bearer`` or as the console's session cookie; a write
  carried by the cookie needs the matching ``X-CSRF-Token`` (browsers attach cookies on
  their own, never that header).
- Open paths: /healthz, the console's static files (GET / and /console/...), /v1/session.
- Internal paths (/v1/internal/..., where replicas send their monitoring alerts) take only
  ``Authorization: Bearer <the key the server gives its replicas>``, on loopback too: no
  user token or session opens them.
- Federation client paths (/v1/federated/...) take a federation's join token, which their
  routes check (server/federations/routes.py), on loopback too; no user token opens them.
Routers contain no auth code; they read ``request.state.principal``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

from modelyard.errors import ForbiddenError, InvalidHostError, UnauthorizedError
from modelyard.http_errors import send_error
from modelyard.server.auth.tokens import TokenInfo, TokenStore, secret_key
from modelyard.server.config import ServerConfig

__all__ = ["Principal", "Auth", "AuthMiddleware", "COOKIE", "CSRF_HEADER", "INTERNAL_PREFIX", "FEDERATED_PREFIX"]

COOKIE = "modelyard_session"
CSRF_HEADER = "x-csrf-token"
SESSION_S = 12 * 3600
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """The caller: ``role`` read|admin, ``name`` of the token (``local`` on an open server)."""

    role: str
    name: str
    via: str  # token | cookie | open


LOCAL = Principal(role="admin", name="local", via="open")
INTERNAL = Principal(role="internal", name="replicas", via="internal")
INTERNAL_PREFIX = "/v1/internal/"
FEDERATED_PREFIX = "/v1/federated/"
FEDERATED = Principal(role="federated", name="federation client", via="join token")


class Auth:
    """The decisions of the middleware, testable without a server."""

    def __init__(self, config: ServerConfig, home: Path, *, internal_key: str | None = None) -> None:
        self.config = config
        self.internal_key = internal_key  # None: the internal routes answer no one
        self.tokens = TokenStore(home)
        self._key = secret_key(home)
        self.hosts = config.host_guard()

    @property
    def required(self) -> bool:
        return not self.config.loopback or self.tokens.any()

    def host_ok(self, host: str | None) -> bool:
        return self.hosts.host_ok(host)

    def origin_ok(self, origin: str) -> bool:
        return self.hosts.origin_ok(origin, self.config.allowed_origins)

    # -- session cookies and CSRF tokens -----------------------------------------------

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def session_cookie(self, info: TokenInfo) -> str:
        """``<token id>.<expiry>.<signature>``; bound to the token's hash, so revoking it ends the session."""
        body = f"{info.id}.{int(time.time()) + SESSION_S}"
        return f"{body}.{self._sign(body + '.' + info.sha256)}"

    def from_cookie(self, value: str) -> TokenInfo | None:
        token_id, _, rest = value.partition(".")
        expiry, _, signature = rest.partition(".")
        info = self.tokens.by_id(token_id)
        if info is None or not expiry.isdigit() or int(expiry) < time.time():
            return None
        ok = hmac.compare_digest(signature, self._sign(f"{token_id}.{expiry}.{info.sha256}"))
        return info if ok else None

    def internal_ok(self, headers: dict[str, str]) -> bool:
        """Whether the request carries the key of the server's own replicas (constant-time compare)."""
        scheme, _, key = headers.get("authorization", "").partition(" ")
        return (
            self.internal_key is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(key.strip().encode(), self.internal_key.encode())
        )

    def csrf_for(self, cookie: str | None) -> str:
        """The CSRF token of a session (or of the open, token-less loopback server)."""
        return self._sign("csrf." + (cookie or "open"))[:40]

    def identify(self, headers: dict[str, str]) -> tuple[Principal | None, str | None, str | None]:
        """(principal, the session cookie if that carried it, problem if credentials were bad)."""
        header = headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            info = self.tokens.verify(token) if scheme.lower() == "bearer" and token.strip() else None
            if info is None:
                return (
                    None,
                    None,
                    "Invalid token: expected `Authorization: Bearer <token>` with a token from "
                    "`modelyard server token create`",
                )
            return Principal(info.role, info.name, "token"), None, None
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed Cookie header carries no session
            return None, None, None
        morsel = cookie.get(COOKIE)
        if morsel is not None and morsel.value:
            info = self.from_cookie(morsel.value)
            if info is not None:
                return Principal(info.role, info.name, "cookie"), morsel.value, None
            return None, None, "Session expired or revoked: sign in again with a token"
        return None, None, None


def _is_open_path(method: str, path: str) -> bool:
    if path in ("/healthz", "/v1/session"):
        return True
    return method in ("GET", "HEAD") and (path == "/" or path == "/favicon.ico" or path.startswith("/console"))


class AuthMiddleware:
    """Pure ASGI (streams such as Server-Sent Events pass through untouched)."""

    def __init__(self, app: Any, auth: Auth) -> None:
        self.app, self.auth = app, auth

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        method, path = scope["method"].upper(), scope["path"]
        write = method not in _READ_METHODS
        if not self.auth.host_ok(headers.get("host")):
            await send_error(
                send,
                InvalidHostError(self.auth.hosts.refusal(headers.get("host"))),
            )
            return
        origin = headers.get("origin")
        if write and origin is not None and not self.auth.origin_ok(origin):
            await send_error(
                send,
                ForbiddenError(
                    f"Cross-origin write refused: Origin {origin!r} is not this server "
                    "(add it with --allowed-origin if it is your console)"
                ),
            )
            return
        if path.startswith(INTERNAL_PREFIX):
            if not self.auth.internal_ok(headers):
                await send_error(
                    send,
                    UnauthorizedError(
                        f"{path} is internal: only this server's deployment replicas call it, with the key it "
                        "gives them; no user token opens it"
                    ),
                )
                return
            scope.setdefault("state", {})["principal"] = INTERNAL
            scope["state"]["session_cookie"] = None
            await self.app(scope, receive, send)
            return
        if path.startswith(FEDERATED_PREFIX):  # the route checks the join token (a 401 for any other)
            scope.setdefault("state", {})["principal"] = FEDERATED
            scope["state"]["session_cookie"] = None
            await self.app(scope, receive, send)
            return
        principal, cookie, problem = self.auth.identify(headers)
        if not _is_open_path(method, path):
            if self.auth.required:
                if principal is None:
                    await send_error(
                        send,
                        UnauthorizedError(
                            problem
                            or "Missing token: this server needs "
                            "`Authorization: Bearer <token>` (create one with `modelyard server token create`)"
                        ),
                    )
                    return
                if write and principal.role != "admin":
                    await send_error(
                        send,
                        ForbiddenError(
                            f"Token {principal.name!r} has role {principal.role!r}; {method} {path} needs an admin token"
                        ),
                    )
                    return
            elif principal is None:
                principal = LOCAL
            if (
                write
                and cookie is not None
                and not hmac.compare_digest(headers.get(CSRF_HEADER, ""), self.auth.csrf_for(cookie))
            ):
                await send_error(
                    send,
                    ForbiddenError(
                        "Missing or wrong X-CSRF-Token: a write carried by the session "
                        "cookie needs the csrf value from GET /v1/session"
                    ),
                )
                return
        scope.setdefault("state", {})["principal"] = principal
        scope["state"]["session_cookie"] = cookie
        await self.app(scope, receive, send)
