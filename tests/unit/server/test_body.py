"""The control plane's bounded body reader: declared and streamed bodies past the limit are 413s naming ``body``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from modelyard.errors import ModelyardError
from modelyard.server.body import read_body

pytestmark = pytest.mark.anyio
LIMIT = 100


def _app(seen: list[int]) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        body = await read_body(request, LIMIT, what="Echo body")
        seen.append(len(body))
        return Response(body, media_type="application/octet-stream")

    async def error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ModelyardError)
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    app.add_exception_handler(ModelyardError, error)
    return app


async def _chunks(sizes: list[int]) -> AsyncIterator[bytes]:
    for i, n in enumerate(sizes):
        yield bytes([65 + i]) * n


async def test_a_body_up_to_the_limit_comes_back_whole_declared_or_streamed() -> None:
    seen: list[int] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(seen)), base_url="http://t") as http:
        whole = await http.post("/echo", content=b"x" * LIMIT)
        streamed = await http.post("/echo", content=_chunks([40, 40, 20]))
    assert whole.status_code == 200 and whole.content == b"x" * LIMIT
    assert streamed.status_code == 200 and streamed.content == b"A" * 40 + b"B" * 40 + b"C" * 20
    assert seen == [LIMIT, LIMIT]


async def test_a_body_past_the_limit_is_a_413_naming_body_whether_declared_or_streamed() -> None:
    seen: list[int] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(seen)), base_url="http://t") as http:
        declared = await http.post("/echo", content=b"x" * (LIMIT + 1))
        streamed = await http.post("/echo", content=_chunks([60, 60, 60]))
    assert declared.status_code == 413 and streamed.status_code == 413
    assert declared.json() == {
        "error": "BodyTooLargeError",
        "message": f"Echo body too large: expected at most {LIMIT} bytes, received {LIMIT + 1}",
        "field": "body",
    }
    assert (
        streamed.json()["message"] == f"Echo body too large: expected at most {LIMIT} bytes, received more than {LIMIT}"
    )
    assert seen == []
