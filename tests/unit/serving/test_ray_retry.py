"""The retry layer of Ray Serve (serving/ray_retry.py) as plain ASGI, without Ray.

The inner app plays Ray's proxy: it ends a request without an answer (its replica died) or
answers a body-lost 503 a set number of times, then answers for real; the checks are what the
client gets and what the inner app saw (the same body each try).
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from modelyard.serving.ray_retry import BODY_LOST_HEADER, RETRIES_HEADER, BodyDeadline, RetryDeadReplica

pytestmark = pytest.mark.anyio


class Flaky:
    """ASGI app: the first ``failures`` calls fail as ``how`` says, then it echoes the body with 200."""

    def __init__(self, failures: int, how: str = "silent") -> None:
        self.failures, self.how, self.bodies = failures, how, []

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        if len(self.bodies) <= self.failures:
            if self.how == "lost":
                await send({"type": "http.response.start", "status": 503, "headers": [(BODY_LOST_HEADER, b"1")]})
                await send({"type": "http.response.body", "body": b"{}"})
            return  # "silent": what Ray's proxy does when the replica died holding the request
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": orjson.dumps({"echo": body.decode()})})


async def call(app: Any, method: str, path: str, body: bytes = b"") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as http:
        return await http.request(method, path, content=body)


@pytest.mark.parametrize("how", ["silent", "lost"])
async def test_an_idempotent_request_is_sent_again_with_the_same_body(how: str) -> None:
    inner = Flaky(failures=2, how=how)
    got = await call(RetryDeadReplica(inner, delay_s=0), "POST", "/v1/models/m/predict", b'{"instances": [[1]]}')
    assert got.status_code == 200 and got.json() == {"echo": '{"instances": [[1]]}'}
    assert got.headers[RETRIES_HEADER.decode()] == "2"
    assert inner.bodies == [b'{"instances": [[1]]}'] * 3


async def test_after_the_last_try_the_answer_is_a_one_line_503() -> None:
    inner = Flaky(failures=10)
    got = await call(RetryDeadReplica(inner, attempts=3, delay_s=0), "POST", "/v1/models/m/versions/2/explain", b"{}")
    assert got.status_code == 503 and len(inner.bodies) == 3
    assert got.json()["error"] == "DeploymentUnavailableError" and "3 tries" in got.json()["message"]
    assert "\n" not in got.json()["message"]


async def test_a_request_with_side_effects_is_not_retried() -> None:
    inner = Flaky(failures=1, how="lost")
    got = await call(RetryDeadReplica(inner, delay_s=0), "POST", "/v1/models/m/versions/1/feedback", b"{}")
    assert got.status_code == 503 and BODY_LOST_HEADER.decode() in got.headers  # passed on as it came
    assert len(inner.bodies) == 1


async def test_a_body_over_the_limit_is_streamed_through_and_not_retried() -> None:
    inner = Flaky(failures=1, how="lost")
    big = b"x" * 5000
    got = await call(RetryDeadReplica(inner, delay_s=0, max_body_bytes=1000), "POST", "/v1/models/m/predict", big)
    assert got.status_code == 503 and inner.bodies == [big]


async def test_a_body_that_never_arrives_is_a_marked_503() -> None:
    async def stalled() -> dict:
        import asyncio

        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    inner = Flaky(failures=0)
    scope = {"type": "http", "method": "POST", "path": "/v1/models/m/predict", "headers": []}
    await BodyDeadline(inner, body_timeout_s=0.05)(scope, stalled, send)
    assert sent[0]["status"] == 503 and (BODY_LOST_HEADER, b"1") in sent[0]["headers"]
    assert b"did not reach this replica in 0.05 s" in sent[1]["body"] and inner.bodies == []
    # A body that arrives goes to the app whole.
    got = await call(BodyDeadline(inner), "POST", "/v1/models/m/predict", b'{"a": 1}')
    assert got.json() == {"echo": '{"a": 1}'}


async def test_the_deadline_holds_only_bodies_the_proxy_would_resend() -> None:
    async def stalled() -> dict:
        import asyncio

        await asyncio.sleep(60)
        return {"type": "http.disconnect"}

    called: list[str] = []

    async def app(scope: dict, receive: Any, send: Any) -> None:  # answers without reading the body
        called.append(scope["path"])
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    # feedback has side effects (never resent): straight to the app, whose auth answers it
    scope = {"type": "http", "method": "POST", "path": "/v1/models/m/feedback", "headers": []}
    await BodyDeadline(app, body_timeout_s=0.05)(scope, stalled, send)
    assert called == ["/v1/models/m/feedback"] and sent[0]["status"] == 401
    # a predict body past max_body_bytes is not buffered whole: the app gets all of it as it streams
    parts = [bytes([65 + i]) * 1000 for i in range(5)]
    given: list[int] = []

    async def chunked() -> dict:
        given.append(1)
        return {"type": "http.request", "body": parts[len(given) - 1], "more_body": len(given) < len(parts)}

    inner, sent = Flaky(failures=0), []
    predict = {**scope, "path": "/v1/models/m/predict"}
    await BodyDeadline(inner, body_timeout_s=5, max_body_bytes=1500)(predict, chunked, send)
    assert inner.bodies == [b"".join(parts)] and sent[0]["status"] == 200
