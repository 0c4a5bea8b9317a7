"""Strict JSON parsing, the nesting-depth scan and the body-size middleware."""

from __future__ import annotations

import json
import random

import pytest

from modelyard.errors import InvalidInstancesError, MalformedRequestError
from modelyard.serving.limits import BodyLimitMiddleware, nesting_depth, parse_json

pytestmark = pytest.mark.anyio


def reference_depth(value: object) -> int:
    """Depth of a parsed JSON value (the number of enclosing brackets of its deepest part)."""
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    return 0


def random_json(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 6 or roll < 0.3:
        return rng.choice([1, -2.5, "a[b", 'q"]}[{', "\\", '\\"[', True, None, ""])
    if roll < 0.65:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["k", "[", '}\\"']) + str(i): random_json(rng, depth + 1) for i in range(rng.randint(0, 3))}


def test_nesting_depth_matches_the_parsed_structure_with_brackets_and_escapes_in_strings() -> None:
    rng = random.Random(0)
    for _ in range(300):
        value = random_json(rng)
        body = json.dumps(value).encode()
        assert nesting_depth(body) == reference_depth(value), body


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"", 400, "Empty request body"),
        (b"  \n", 400, "Empty request body"),
        (b'{"instances": [[1, 2]]', 400, "Malformed JSON"),
        (b"\xff\xfe{}", 400, "byte 0xff at position 0"),
        (b'{"instances": [[NaN, 1]]}', 422, "Invalid number NaN"),
        (b'{"instances": [[Infinity]]}', 422, "Invalid number Infinity"),
        (b'{"instances": [[-Infinity]]}', 422, "Invalid number -Infinity"),
        (b"[" * 33 + b"]" * 33, 400, "expected at most 32 levels, received 33"),
        (b"[" * 100_000, 400, "nested too deeply"),
    ],
)
def test_bad_bodies_are_refused_with_what_was_expected_and_received(body: bytes, status: int, fragment: str) -> None:
    with pytest.raises((MalformedRequestError, InvalidInstancesError)) as info:
        parse_json(body, max_depth=32)
    assert info.value.http_status == status
    assert fragment in info.value.message


def test_depth_counts_structure_not_brackets_inside_strings() -> None:
    body = json.dumps({"instances": [["[" * 100, 1]]}).encode()
    assert parse_json(body, max_depth=4) == {"instances": [["[" * 100, 1]]}
    # A string full of closing brackets cannot hide real nesting from the scan.
    sneaky = b'["' + b"]" * 50 + b'", ' + b"[" * 40 + b"]" * 40 + b"]"
    with pytest.raises(MalformedRequestError, match="received 41"):
        parse_json(sneaky, max_depth=32)


VALID_DOCUMENTS = [
    {"instances": [[0.1, -2.5e-7, 3e5, 1e-320, -0.0, 255, 0]]},  # exponents, a subnormal, integers
    {"instances": [[1.7976931348623157e308, -1.7976931348623157e308]]},  # float64's limits
    {"text": 'tab\tquote" backslash\\ slash/ é 漢 \U0001f600', "nested": [[[[]]], {}, {"a": None}]},
    [True, False, None, "", 2**63 - 1, -(2**63)],
]


@pytest.mark.parametrize("document", VALID_DOCUMENTS)
def test_the_fast_parser_reads_documents_exactly_as_the_standard_library(document: object, monkeypatch) -> None:
    import modelyard.serving.limits as limits

    monkeypatch.setattr(limits, "_parse_slowly", lambda body: pytest.fail(f"fell back on {body!r}"))
    for body in (json.dumps(document).encode(), json.dumps(document, indent=2, ensure_ascii=False).encode()):
        got = parse_json(body, max_depth=32)
        assert got == json.loads(body) and json.dumps(got) == json.dumps(json.loads(body))  # same values, same types


def test_what_the_fast_parser_refuses_gets_the_standard_librarys_answer() -> None:
    # A lone surrogate is valid JSON to Python (orjson refuses it): parsed, not an error.
    assert parse_json(b'{"a": "\\ud800"}', max_depth=32) == {"a": "\ud800"}
    # A number past float64 becomes infinity, as with Python's json (the codec then refuses it).
    assert parse_json(b"[1e400, -1e400]", max_depth=32) == [float("inf"), float("-inf")]
    # Errors keep the standard library's wording and position.
    with pytest.raises(MalformedRequestError, match="Malformed JSON: Expecting value at line 2 column 5"):
        parse_json(b'{"instances":\n    ]}', max_depth=32)
    with pytest.raises(MalformedRequestError, match="Malformed JSON: Unexpected UTF-8 BOM"):
        parse_json(b'\xef\xbb\xbf{"instances": [[1]]}', max_depth=32)


def test_integers_past_64_bits_become_the_nearest_float() -> None:
    assert parse_json(b"[123456789012345678901234567890]", max_depth=32) == [1.2345678901234568e29]


class _App:
    """An ASGI app that reads the whole body, recording how many bytes it saw."""

    def __init__(self) -> None:
        self.read = 0

    async def __call__(self, scope: dict, receive, send) -> None:  # noqa: ANN001
        while True:
            message = await receive()
            self.read += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(
    app: BodyLimitMiddleware, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> tuple[int, bytes, int]:
    pulled = 0

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        index = pulled - 1
        return {"type": "http.request", "body": chunks[index], "more_body": index < len(chunks) - 1}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await app({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body, pulled


async def test_declared_length_over_the_limit_is_refused_before_reading_anything() -> None:
    inner = _App()
    status, body, pulled = await call(BodyLimitMiddleware(inner, 100), [(b"content-length", b"1000000000")], [b"x"])
    assert status == 413 and pulled == 0 and inner.read == 0
    assert b"at most 100 bytes" in body and b"1000000000" in body


async def test_chunked_body_stops_being_read_at_the_first_chunk_past_the_limit() -> None:
    inner = _App()
    chunks = [b"x" * 40] * 50  # 2000 bytes in all, no Content-Length
    status, body, pulled = await call(BodyLimitMiddleware(inner, 100), [], chunks)
    assert status == 413 and pulled == 3  # 40, 80, 120 > 100: stop
    assert b"BodyTooLargeError" in body


async def test_bodies_within_the_limit_pass_untouched() -> None:
    inner = _App()
    status, body, _ = await call(BodyLimitMiddleware(inner, 100), [(b"content-length", b"80")], [b"x" * 40, b"y" * 40])
    assert (status, body, inner.read) == (200, b"ok", 80)


async def test_unparseable_content_length_is_a_400() -> None:
    status, body, pulled = await call(BodyLimitMiddleware(_App(), 100), [(b"content-length", b"12abc")], [b""])
    assert status == 400 and pulled == 0 and b"Content-Length" in body
