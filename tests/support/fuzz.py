"""Odd request bodies for fuzz tests: a seeded loop, not a library (no hypothesis here).

``bodies(valid, n)`` yields ``(body_bytes, content_type)`` pairs: fixed hostile documents
(deep nesting, numbers past every range, NaN, empty containers, bad UTF-8, wrong content
types) and ``n`` mutations of ``valid`` where one value at a random path is replaced by an
odd one. A server answering any of them with a 5xx has a bug. Holds no tests itself.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from typing import Any

JSON = "application/json"

# Odd values for a slot of a document; raw JSON text so literals Python cannot dump go too.
ODD_VALUES = [
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1.5",
    "-0.0",
    "1e400",
    "-1e400",
    "1e-400",
    "9" * 5000,  # past Python's 4,300-digit int-to-str limit
    "-" + "9" * 5000,
    "18446744073709551616",  # 2**64
    "NaN",
    "Infinity",
    "-Infinity",
    '""',
    '"10"',
    '"\\ud800"',  # a lone surrogate
    '"' + "x" * 10_000 + '"',
    "[]",
    "{}",
    "[[]]",
    "[null]",
    "[true, 1]",
    '{"": null}',
    "[" * 200 + "]" * 200,
    '{"a":' * 200 + "1" + "}" * 200,
]

FIXED: list[tuple[bytes, str]] = [
    (b"", JSON),
    (b" ", JSON),
    (b"null", JSON),
    (b"[]", JSON),
    (b"{}", JSON),
    (b'"text"', JSON),
    (b"1" * 5000, JSON),
    (b"[" * 100_000, JSON),
    (b"[" * 100_000 + b"]" * 100_000, JSON),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, JSON),
    (b"\xff\xfe{}", JSON),
    (b'{"instances": NaN}', JSON),
    (b'{"instances": [1, 2', JSON),
    (b"{'single': 'quotes'}", JSON),
    (b"key=value", "application/x-www-form-urlencoded"),
    (b"plain", "text/plain"),
    (b"\x00\x01\x02", "application/octet-stream"),
    (b"--x\r\n\r\n", "multipart/form-data"),  # no boundary parameter
    (b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    (b"not a png", "image/png"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png"),
    (b"\xff\xd8\xff" + b"\x00" * 64, "image/jpeg"),
    (b"a: [1, 2", "application/yaml"),
    (b"name: t\nseed: " + b"9" * 5000, "application/yaml"),  # yaml.safe_load's int() hits the digit limit too
    (b"{}", "application/json; charset=latin-1"),
    (b"{}", "application/json; charset=utf-16"),
    (b"{}", ""),
]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:4]):
            yield from _paths(item, (*prefix, index))


_MARK = "__fuzz_slot__"


def mutate(valid: dict[str, Any], rng: random.Random) -> bytes:
    """``valid`` with one value (or an added key) replaced by an odd JSON value."""
    doc = copy.deepcopy(valid)
    path = rng.choice([p for p in _paths(doc) if p])
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if isinstance(parent, dict) and rng.random() < 0.2:
        last = rng.choice(["extra", "__proto__", "", "instances"])
    parent[last] = _MARK
    return json.dumps(doc).replace(json.dumps(_MARK), rng.choice(ODD_VALUES), 1).encode()


async def assert_no_5xx(
    http: Any, path: str, valid: dict[str, Any], n: int, seen: dict[int, int], method: str = "POST"
) -> None:
    """Send (``method``) every body of ``bodies(valid, n)`` to ``path``: each answer a 2xx, or a 4xx with a one-line message.

    ``seen`` counts the status codes (so a test can check the valid bodies still pass)."""
    for body, ctype in bodies(valid, n, seed=len(path)):
        r = await http.request(method, path, content=body, headers={"content-type": ctype})
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, (path, body[:200], ctype, r.text[:300])
        if r.status_code >= 400:
            answer = r.json()
            assert answer["error"] and answer["message"] and "\n" not in answer["message"], answer


def bodies(valid: dict[str, Any], n: int, *, seed: int = 0) -> Iterator[tuple[bytes, str]]:
    yield from FIXED
    for value in ODD_VALUES:
        yield value.encode(), JSON
    rng = random.Random(seed)
    for _ in range(n):
        yield mutate(valid, rng), JSON
