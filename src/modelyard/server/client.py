"""A small HTTP client for the control plane (what ``modelyard jobs ...`` uses).

    from modelyard.server.client import ServerClient
    with ServerClient() as api:                       # $MODELYARD_SERVER_URL, $MODELYARD_TOKEN
        job = api.submit_job({"name": "xor", ...})
        for event, data in api.job_events(job["id"]):
            ...

Error answers come back as the modelyard error they stand for (a 422 is a SpecError
naming the field, a 404 a NotFoundError, ...); a server that is not running is one line
saying how to start it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import httpx

from modelyard import errors
from modelyard.errors import AccessDeniedError, ModelyardError, ServerUnavailableError

__all__ = ["ServerClient", "ServerUnavailableError", "DEFAULT_URL", "URL_ENV", "TOKEN_ENV"]

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "MODELYARD_SERVER_URL"
TOKEN_ENV = "MODELYARD_TOKEN"


def _error_from(response: httpx.Response) -> ModelyardError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    message = message or f"HTTP {response.status_code} from {response.request.method} {response.request.url.path}"
    if response.status_code in (401, 403):
        hint = "" if os.environ.get(TOKEN_ENV) else f" (pass --token or set ${TOKEN_ENV})"
        return AccessDeniedError(message + hint)
    cls = getattr(errors, str(body.get("error", "")) if isinstance(body, dict) else "", None)
    if not (isinstance(cls, type) and issubclass(cls, ModelyardError)):
        cls = errors.InputError if 400 <= response.status_code < 500 else ModelyardError
    return cls(message, field=body.get("field") if isinstance(body, dict) else None)


class ServerClient:
    """Calls to one control plane at ``url`` with an optional bearer ``token``."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout_s: float = 30.0) -> None:
        self.url = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
        token = token or os.environ.get(TOKEN_ENV) or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=5.0))

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ServerUnavailableError(
                f"No modelyard server at {self.url}: start one with `modelyard server` (or point --url / "
                f"${URL_ENV} at a running one)"
            ) from None
        except httpx.TimeoutException:
            raise ServerUnavailableError(f"The modelyard server at {self.url} did not answer in time") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    # -- jobs --------------------------------------------------------------------------

    def submit_job(
        self, spec: dict[str, Any] | str, overrides: list[str] | tuple[str, ...] = (), max_attempts: int | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"spec": spec, "overrides": list(overrides)}
        if max_attempts is not None:
            body["max_attempts"] = max_attempts
        return self.request("POST", "/v1/jobs", json=body).json()

    def jobs(self, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
        return self.request("GET", "/v1/jobs", params=params).json()["jobs"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{job_id}").json()

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/jobs/{job_id}/cancel").json()

    def job_logs(self, job_id: str, offset: int = 0) -> tuple[str, int, str]:
        """(text from ``offset``, the next offset, the job's status)."""
        response = self.request("GET", f"/v1/jobs/{job_id}/logs", params={"offset": offset})
        return (
            response.text,
            int(response.headers.get("x-next-offset", offset)),
            response.headers.get("x-job-status", ""),
        )

    def job_events(self, job_id: str) -> Iterator[tuple[str, Any]]:
        """(event, data) pairs from the job's Server-Sent Events until its ``end`` event."""
        try:
            with self._http.stream(
                "GET", f"/v1/jobs/{job_id}/events", timeout=httpx.Timeout(None, connect=5.0)
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error_from(resp)
                event, data = "message", []
                for line in resp.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        yield event, json.loads("\n".join(data))
                        event, data = "message", []
        except httpx.ConnectError:
            raise ServerUnavailableError(
                f"No modelyard server at {self.url}: start one with `modelyard server`"
            ) from None

    # -- datasets ----------------------------------------------------------------------

    def upload_dataset(self, path: str | os.PathLike[str], name: str, *, filename: str | None = None) -> dict[str, Any]:
        """Stream the table file at ``path`` to ``POST /v1/datasets``: the stored version's facts."""
        shown = filename or os.path.basename(os.fspath(path))

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(os.path.getsize(path))}
        return self.request(
            "POST", "/v1/datasets", params={"name": name, "filename": shown}, content=chunks(), headers=headers
        ).json()

    def datasets(self, name: str | None = None) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/datasets", params={"name": name} if name else {}).json()["datasets"]

    def dataset(self, name: str, version: int) -> dict[str, Any]:
        return self.request("GET", f"/v1/datasets/{name}/versions/{version}").json()
