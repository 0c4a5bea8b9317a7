"""Every kind of bad input gets a 4xx naming what was expected and received, never a 500."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelyard.predict import Predictor
from modelyard.serving import ServeConfig, create_app
from tests.support.images import assert_no_repr, bad_images
from tests.support.serving import assert_same_predictions, client, instances, png, register

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}
GOOD = json.dumps({"instances": [[1.0, 2.0, 3.0, 4.0]]}).encode()

CASES = [
    # (id, body, headers, status, fragment of the message)
    (
        "wrong-shape",
        b'{"instances": [[1, 2, 3]]}',
        JSON,
        422,
        "shape [4] (float32), received 1 instance(s) of shape [3]",
    ),
    ("one-instance-not-in-a-list", b'{"instances": [1, 2, 3, 4]}', JSON, 422, "of shape []"),
    ("ragged", b'{"instances": [[1, 2, 3, 4], [1]]}', JSON, 422, "uneven lengths"),
    ("strings", b'{"instances": [["a", "b", "c", "d"]]}', JSON, 422, "expected numbers (float32)"),
    ("booleans", b'{"instances": [[true, false, true, true]]}', JSON, 422, "received true/false values"),
    ("booleans-among-numbers", b'{"instances": [[1, 2.5, true, 4]]}', JSON, 422, "received true/false values"),
    ("null", b'{"instances": [[1, 2, null, 4]]}', JSON, 422, "mixed or out-of-range"),
    ("nan-literal", b'{"instances": [[NaN, 2, 3, 4]]}', JSON, 422, "Invalid number NaN"),
    ("infinity-literal", b'{"instances": [[1, Infinity, 3, 4]]}', JSON, 422, "Invalid number Infinity"),
    ("overflow-to-inf", b'{"instances": [[1, 1e999, 3, 4]]}', JSON, 422, "expected finite float32"),
    ("overflow-float32", b'{"instances": [[1, 2, 3, 4], [1e39, 2, 3, 4]]}', JSON, 422, "`instances[1]`"),
    ("malformed", b'{"instances": [[1, 2, 3, 4]', JSON, 400, "Malformed JSON"),
    ("trailing-garbage", b'{"instances": [[1, 2, 3, 4]]} x', JSON, 400, "Malformed JSON: Extra data"),
    ("not-utf8", b'{"instances": [[1, 2, 3, 4]], "x": "\xe9"}', JSON, 400, "not UTF-8"),
    ("utf16", '{"instances": [[1, 2, 3, 4]]}'.encode("utf-16"), JSON, 400, "not UTF-8"),
    ("empty", b"", JSON, 400, "Empty request body"),
    ("deep", b'{"instances": ' + b"[" * 1000 + b"]" * 1000 + b"}", JSON, 400, "nested too deeply"),
    ("missing-instances", b'{"inputs": [[1, 2, 3, 4]]}', JSON, 422, "unknown key(s) ['inputs']"),
    ("top-level-array", b"[[1, 2, 3, 4]]", JSON, 422, "expected a JSON object"),
    ("empty-instances", b'{"instances": []}', JSON, 422, "received an empty list"),
    (
        "pickle",
        b"\x80\x04\x95\x10\x00\x00",
        {"content-type": "application/python-pickle"},
        415,
        "Unsupported Content-Type",
    ),
    ("octet-stream", b"\x00\x01", {"content-type": "application/octet-stream"}, 415, "expected application/json"),
    ("form-urlencoded", b"instances=1", {"content-type": "application/x-www-form-urlencoded"}, 415, "Unsupported"),
    (
        "too-large",
        b'{"instances": [' + b"[1, 2, 3, 4], " * 2000 + b"[1, 2, 3, 4]]}",
        JSON,
        413,
        "expected at most 4096 bytes",
    ),
    (
        "image-of-wrong-size-for-tabular-model",
        png(np.zeros((3, 3))),
        {"content-type": "image/png"},
        400,
        "expected 2x2 pixels, received 3x3",
    ),
]


@pytest.fixture
def app(home: Path):  # noqa: ANN201
    clf = Predictor.load(register("clf", home), home=home)
    img = Predictor.load(register("img", home), home=home)
    return create_app(
        [clf, img],
        ServeConfig(backend="torch", max_wait_ms=0, max_batch_size=4, max_body_bytes=4096, max_image_pixels=10_000),
    )


@pytest.mark.parametrize(("body", "headers", "status", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_json_and_content_types(app, body: bytes, headers: dict, status: int, fragment: str) -> None:  # noqa: ANN001
    async with client(app) as http:
        r = await http.post("/v1/models/clf/predict", content=body, headers=headers)
        ok = await http.post("/v1/models/clf/predict", content=GOOD, headers=JSON)  # the server is fine after it
    assert r.status_code == status, r.text
    assert fragment in r.json()["message"], r.json()
    assert ok.status_code == 200


async def test_images_png_jpeg_and_multipart_match_in_process_predict(app, home: Path) -> None:  # noqa: ANN001
    img = Predictor.load("img:1", home=home)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, size=(2, 8, 8)).astype(np.uint8)
    async with client(app) as http:
        r_png = await http.post("/v1/models/img/predict", content=png(a), headers={"content-type": "image/png"})
        r_jpg = await http.post(
            "/v1/models/img/predict", content=png(b, "JPEG"), headers={"content-type": "image/jpeg"}
        )
        r_multi = await http.post(
            "/v1/models/img/predict",
            files=[("file", ("a.png", png(a), "image/png")), ("file", ("b.png", png(b), "image/png"))],
        )
    assert r_png.status_code == 200 and r_jpg.status_code == 200 and r_multi.status_code == 200
    assert r_png.json()["predictions"] == img.records(a.reshape(1, 1, 8, 8).astype(np.float32))
    assert r_multi.json()["predictions"] == img.records(np.stack([a, b]).reshape(2, 1, 8, 8).astype(np.float32))
    assert len(r_jpg.json()["predictions"]) == 1


IMAGE_CASES = [
    (
        "undecodable",
        {"content": b"\x89PNG\r\n\x1a\n garbage", "headers": {"content-type": "image/png"}},
        400,
        "Cannot decode image",
    ),
    (
        "truncated-jpeg",
        {"content": png(np.zeros((8, 8)), "JPEG")[:40], "headers": {"content-type": "image/jpeg"}},
        400,
        "Cannot decode image",
    ),
    ("text-as-jpeg", {"content": b"hello", "headers": {"content-type": "image/jpeg"}}, 400, "expected a PNG or JPEG"),
    ("empty-image", {"content": b"", "headers": {"content-type": "image/png"}}, 400, "Empty image upload"),
    (
        "wrong-size",
        {"content": png(np.zeros((9, 8))), "headers": {"content-type": "image/png"}},
        400,
        "expected 8x8 pixels, received 8x9",
    ),
    (
        "too-many-pixels",
        {"content": png(np.zeros((120, 120))), "headers": {"content-type": "image/png"}},
        400,
        "too large: 120x120",
    ),
    (
        "oversized-bytes",
        {"content": png(np.random.default_rng(0).integers(0, 255, (90, 90))), "headers": {"content-type": "image/png"}},
        413,
        "at most 4096 bytes",
    ),
    (
        "gif",
        {"content": png(np.zeros((8, 8)), "GIF"), "headers": {"content-type": "image/png"}},
        400,
        "expected a PNG or JPEG file, received bytes starting b'GIF",
    ),
    (
        "eps-never-reaches-pillow",
        {"content": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n", "headers": {"content-type": "image/jpeg"}},
        400,
        "received bytes starting b'%!PS",
    ),
    ("multipart-without-file", {"data": {"field": "x"}, "files": None}, 400, "without a file"),
    (
        "multipart-bad-file",
        {"files": [("file", ("x.png", b"nope", "image/png"))]},
        400,
        "Cannot decode image file=x.png",
    ),
    (
        "multipart-too-many-files",
        {"files": [("file", (f"{i}.png", b"x", "image/png")) for i in range(5)]},
        400,
        "Too many files",
    ),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "fragment"), [c[1:] for c in IMAGE_CASES], ids=[c[0] for c in IMAGE_CASES]
)
async def test_bad_images(app, kwargs: dict, status: int, fragment: str) -> None:  # noqa: ANN001
    if kwargs.get("files") is None and "data" in kwargs:
        kwargs = {
            "content": b'--b\r\nContent-Disposition: form-data; name="field"\r\n\r\nx\r\n--b--\r\n',
            "headers": {"content-type": "multipart/form-data; boundary=b"},
        }
    async with client(app) as http:
        r = await http.post("/v1/models/img/predict", **kwargs)
    assert r.status_code == status, r.text
    assert fragment in r.json()["message"], r.json()


async def test_bad_input_never_disturbs_good_requests_in_flight(app, home: Path) -> None:  # noqa: ANN001
    import asyncio

    clf = Predictor.load("clf:1", home=home)
    x = instances("clf", 3)
    async with client(app) as http:
        results = await asyncio.gather(
            *[http.post("/v1/models/clf/predict", content=body, headers=headers) for _, body, headers, _, _ in CASES]
            + [http.post("/v1/models/clf/predict", json={"instances": x})]
        )
    assert all(r.status_code < 500 for r in results)
    assert results[-1].status_code == 200
    assert_same_predictions(results[-1].json()["predictions"], clf.records(x))


@pytest.mark.parametrize("case", sorted(bad_images(8, 8)))
async def test_bad_images_over_http_answer_one_line_json(app, case: str) -> None:  # noqa: ANN001
    data, fragment = bad_images(8, 8)[case]
    if case == "decompression-bomb":
        fragment = "too large: 100000x100000 pixels, at most 10000"
    async with client(app) as http:
        raw = await http.post("/v1/models/img/predict", content=data, headers={"content-type": "image/png"})
        multi = await http.post("/v1/models/img/predict", files=[("file", ("in.png", data, "image/png"))])
        explained = await http.post("/v1/models/img/explain", content=data, headers={"content-type": "image/png"})
    for r, source in ((raw, "upload"), (multi, "file=in.png"), (explained, "upload")):
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["error"] == "MalformedRequestError" and source in body["message"] and fragment in body["message"]
        assert_no_repr(body["message"])
