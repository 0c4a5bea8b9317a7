"""``/v1/session``: how the web console signs in and gets its CSRF token.

``GET`` says whether the server needs a token and, for the caller, the role and the
CSRF value to send as ``X-CSRF-Token`` on writes; ``POST {"token"}`` trades a token for
an HttpOnly, SameSite=Strict session cookie; ``DELETE`` signs out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from modelyard._validation import StrictModel
from modelyard.errors import UnauthorizedError
from modelyard.server.auth.middleware import COOKIE, LOCAL, SESSION_S, Principal

if TYPE_CHECKING:
    from modelyard.server.app import ServerState

__all__ = ["router", "SessionRequest"]


class SessionRequest(StrictModel):
    token: str = Field(min_length=1, max_length=512)


def router(state: ServerState) -> APIRouter:
    auth = state.auth
    api = APIRouter(tags=["session"])

    def describe(principal: Principal | None, cookie: str | None) -> dict[str, Any]:
        if not auth.required:
            principal = principal or LOCAL
        csrf = None
        if principal is not None and principal.via in ("cookie", "open"):
            csrf = auth.csrf_for(cookie if principal.via == "cookie" else None)
        return {
            "auth": auth.required,
            "role": principal.role if principal else None,
            "name": principal.name if principal else None,
            "csrf": csrf,
        }

    @api.get("/v1/session")
    def get_session(request: Request) -> dict[str, Any]:
        """Who the caller is and the CSRF token the console sends on every write."""
        return describe(request.state.principal, request.state.session_cookie)

    @api.post("/v1/session")
    def sign_in(body: SessionRequest) -> Response:
        """Trade a token for a session cookie (the token itself never reaches the page's script)."""
        info = auth.tokens.verify(body.token)
        if info is None:
            raise UnauthorizedError(
                "Invalid token: expected a token from `modelyard server token create` (it is shown once, when created)"
            )
        cookie = auth.session_cookie(info)
        response = JSONResponse(describe(Principal(info.role, info.name, "cookie"), cookie))
        response.set_cookie(COOKIE, cookie, max_age=SESSION_S, httponly=True, samesite="strict", path="/")
        return response

    @api.delete("/v1/session")
    def sign_out(response: Response) -> dict[str, Any]:
        response.delete_cookie(COOKIE, httponly=True, samesite="strict", path="/")
        return describe(None, None)

    return api
