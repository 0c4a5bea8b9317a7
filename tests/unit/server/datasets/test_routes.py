"""``/v1/datasets``: uploads streamed and size-limited, stored as the CLI stores them; refusals are 4xx that store
nothing; uploads are writes (admin off loopback); jobs name stored datasets, checked and pinned at submit."""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest

from modelyard.server import ServerConfig, create_server_app
from modelyard.server.auth.tokens import TokenStore
from modelyard.server.jobs.store import JobStore
from modelyard.store.datasets import DatasetStore
from modelyard.store.upload import upload_dataset

pytestmark = pytest.mark.anyio
PUBLIC = "192.0.2.2"  # TEST-NET-1, as in tests/unit/server/auth
FRAME = pd.DataFrame({"a": [0.5, 1.0, 2.0, 3.5] * 5, "b": [1, 0, 1, 0] * 5, "y": ["p", "q"] * 10})
CSV = FRAME.to_csv(index=False).encode()


@asynccontextmanager
async def client(home: Path, host: str = "127.0.0.1", **config: object) -> AsyncIterator[httpx.AsyncClient]:
    app = create_server_app(ServerConfig(host=host, port=8080, home=home, **config), start_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}:8080") as http:
            yield http


def _nothing_stored(home: Path) -> bool:
    root = home / "artifacts" / "datasets"
    return DatasetStore(home).list() == [] and (not root.exists() or not [p for p in root.rglob("*") if p.is_file()])


async def test_an_upload_is_stored_as_the_cli_stores_it_and_listed(home: Path, tmp_path: Path) -> None:
    async with client(home) as http:
        r = await http.post("/v1/datasets", params={"name": "tab", "filename": "t.csv"}, content=CSV)
        assert r.status_code == 201, r.text
        parquet = FRAME.to_parquet(index=False)
        second = await http.post(
            "/v1/datasets", params={"name": "tab"}, content=parquet, headers={"content-type": "application/x-parquet"}
        )
        assert second.status_code == 201, second.text
        listed = (await http.get("/v1/datasets")).json()["datasets"]
        shown = (await http.get("/v1/datasets/tab/versions/1")).json()
    stored = DatasetStore(home).get("tab:1")
    assert r.json() == shown == stored.to_dict() and [d["dataset"] for d in listed] == ["tab:1", "tab:2"]
    pd.testing.assert_frame_equal(pd.read_parquet(stored.data_path()), FRAME, check_dtype=False)
    assert shown["rows"] == 20 and [c["name"] for c in shown["schema"]] == ["a", "b", "y"]
    assert shown["lineage"]["source"]["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert second.json()["lineage"]["source"]["file"] == "upload.parquet"
    # The same table stored by the CLI's path has the same schema and rows.
    (tmp_path / "t.csv").write_bytes(CSV)
    local = upload_dataset(tmp_path / "t.csv", name="tab", home=home).to_dict()
    assert (local["rows"], local["schema"]) == (shown["rows"], shown["schema"])
    assert not list((home / "artifacts" / "datasets").glob(".upload-*"))  # the temporary files are gone


async def _chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize(
    ("params", "body", "headers", "status", "field", "words"),
    [
        ({"name": "Tab", "filename": "t.csv"}, CSV, {}, 422, "name", "Invalid value for `name`: expected a string"),
        ({"filename": "t.csv"}, CSV, {}, 422, "query.name", "name"),
        ({"name": "tab", "filename": "t.txt"}, CSV, {}, 415, "filename", "Unsupported dataset file 't.txt'"),
        ({"name": "tab"}, CSV, {"content-type": "text/plain"}, 415, "filename", "pass ?filename=NAME.csv"),
        ({"name": "tab", "filename": "t.csv"}, b"", {}, 400, "body", "Empty dataset file 't.csv' (`body`)"),
        ({"name": "tab", "filename": "t.csv"}, b"a,y\n", {}, 422, "body", "the table has no data rows"),
        ({"name": "tab", "filename": "t.parquet"}, b"s3cr3t,1\n", {}, 422, "body", "expected a parquet file"),
        ({"name": "tab", "filename": "t.csv"}, b"x" * (1 << 20) + CSV, {}, 413, "body", "expected at most 1048576"),
        ({"name": "tab", "filename": "t.csv"}, "STREAM", {}, 413, "body", "received more than 1048576"),
    ],
    ids=["bad name", "no name", "file type", "media type", "empty", "no rows", "not parquet", "declared", "stream"],
)
async def test_bad_uploads_are_one_line_4xx_and_store_nothing(
    home: Path, params: dict, body: object, headers: dict, status: int, field: str, words: str
) -> None:
    content = _chunks(b"a,y\n" + b"1,2\n" * (1 << 19)) if body == "STREAM" else body
    async with client(home, max_data_mb=1) as http:
        r = await http.post("/v1/datasets", params=params, content=content, headers=headers)
    answer = r.json()
    assert r.status_code == status and answer["field"] == field and words in answer["message"], answer
    assert "\n" not in answer["message"] and "s3cr3t" not in answer["message"]
    assert _nothing_stored(home)


async def test_reads_that_miss_are_404_or_400_naming_the_field(home: Path) -> None:
    async with client(home) as http:
        await http.post("/v1/datasets", params={"name": "tab", "filename": "t.csv"}, content=CSV)
        cases = [
            ("/v1/datasets/tab/versions/7", 404, "ref", "Dataset tab:7 not found for `ref` (its versions: 1)"),
            ("/v1/datasets/nope/versions/1", 404, "ref", "Dataset 'nope' not found for `ref` (stored datasets: tab)"),
            ("/v1/datasets/tab/versions/0", 400, "ref", "expected a dataset reference NAME or NAME:VERSION"),
            ("/v1/datasets?name=..", 422, "name", "Invalid value for `name`"),
        ]
        for path, status, field, words in cases:
            r = await http.get(path)
            assert r.status_code == status and r.json()["field"] == field and words in r.json()["message"], path


async def test_an_upload_stores_the_body_never_a_server_file_its_name_points_to(home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("k3y,y\n1,2\n")
    async with client(home) as http:
        r = await http.post("/v1/datasets", params={"name": "tab", "filename": str(secret)}, content=CSV)
        assert r.status_code == 201, r.text
    stored = DatasetStore(home).get("tab:1")
    assert stored.lineage["source"]["file"] == "secret.csv"  # the base name only
    pd.testing.assert_frame_equal(pd.read_parquet(stored.data_path()), FRAME, check_dtype=False)


async def test_uploads_need_an_admin_token_off_loopback_and_reads_a_read_token(home: Path) -> None:
    tokens = TokenStore(home)
    _, admin = tokens.create("admin", "ops")
    _, read = tokens.create("read", "viewer")
    params = {"name": "tab", "filename": "t.csv"}
    async with client(home, host=PUBLIC) as http:
        assert (await http.post("/v1/datasets", params=params, content=CSV)).status_code == 401
        denied = await http.post(
            "/v1/datasets", params=params, content=CSV, headers={"Authorization": f"Bearer {read}"}
        )
        assert denied.status_code == 403 and "needs an admin token" in denied.json()["message"]
        assert _nothing_stored(home)
        ok = await http.post("/v1/datasets", params=params, content=CSV, headers={"Authorization": f"Bearer {admin}"})
        assert ok.status_code == 201, ok.text
        assert (await http.get("/v1/datasets")).status_code == 401
        listed = await http.get("/v1/datasets", headers={"Authorization": f"Bearer {read}"})
        assert [d["dataset"] for d in listed.json()["datasets"]] == ["tab:1"]


def _job(data: dict) -> dict:
    return {
        "name": "on-tab",
        "data": data,
        "model": {"input": [2], "layers": [{"dense": 2}]},
        "train": {"loss": "cross_entropy", "epochs": 1},
    }


async def test_a_job_names_a_stored_dataset_pinned_at_submit_and_an_unknown_one_is_404(home: Path) -> None:
    async with client(home) as http:
        await http.post("/v1/datasets", params={"name": "tab", "filename": "t.csv"}, content=CSV)
        r = await http.post("/v1/jobs", json=_job({"dataset": "tab", "target": "y"}))
        assert r.status_code == 201, r.text
        assert r.json()["spec"]["data"]["source"] == {
            "type": "dataset",
            "options": {"name": "tab:1", "target": "y", "features": None, "groups": None},
        }
        for ref, words in [("tab:2", "Dataset tab:2 not found"), ("other", "Dataset 'other' not found")]:
            missing = await http.post("/v1/jobs", json=_job({"dataset": ref, "target": "y"}))
            assert missing.status_code == 404 and missing.json()["field"] == "data.name", missing.text
            assert words in missing.json()["message"]
    assert len(JobStore(home).list()) == 1


async def test_a_job_reading_a_server_file_outside_the_data_folders_is_refused_without_its_contents(
    home: Path, tmp_path: Path
) -> None:
    """The rule tests/unit/server/test_app.py holds for every path option, here beside a stored dataset."""
    data = tmp_path / "data"
    data.mkdir()
    secret = tmp_path / "secret.csv"
    secret.write_bytes(b"k3y,y\n" + io.BytesIO(CSV).read())
    async with client(home, data_dirs=[data]) as http:
        r = await http.post("/v1/jobs", json=_job({"source": "csv", "path": str(secret), "target": "y"}))
    assert r.status_code == 403 and r.json()["field"] == "data.path"
    assert r.json()["message"] == (
        f"data.path: '{secret}' is outside the server's data folders "
        f"(configured: {data.resolve()}; start the server with --data-dir DIR)"
    )
    assert JobStore(home).list() == []


async def test_damaged_files_get_a_201_or_a_4xx_never_a_5xx(home: Path) -> None:
    """Seeded truncations and byte flips of valid CSV, Parquet and JSON Lines files."""
    import random

    rng = random.Random(0)
    valid = {
        "t.csv": CSV,
        "t.parquet": FRAME.to_parquet(index=False),
        "t.jsonl": FRAME.to_json(orient="records", lines=True).encode(),
    }
    seen: dict[int, int] = {}
    async with client(home) as http:
        for filename, data in valid.items():
            for _ in range(25):
                body = bytearray(data[: rng.randrange(1, len(data) + 1)])
                for _ in range(rng.randrange(0, 4)):
                    body[rng.randrange(len(body))] = rng.randrange(256)
                r = await http.post("/v1/datasets", params={"name": "fuzz", "filename": filename}, content=bytes(body))
                seen[r.status_code] = seen.get(r.status_code, 0) + 1
                assert r.status_code == 201 or (400 <= r.status_code < 500 and "\n" not in r.json()["message"]), r.text
    assert seen.get(201, 0) > 0 and sum(n for s, n in seen.items() if s >= 400) > 10, seen
