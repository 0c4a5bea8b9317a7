"""The S3 artifact store against a real S3-compatible server (moto's server mode on 127.0.0.1).

Two homes share one database and one bucket, as two servers do: what one registers the other
loads; a registration that fails mid-upload leaves no version; a damaged object is caught by its
sha256 before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from modelyard import workflow
from modelyard.errors import MissingDependencyError, NotFoundError, StoreError
from modelyard.predict import Predictor
from modelyard.store import ModelStore, gc
from modelyard.store import db as store_db
from modelyard.store.datasets import DatasetStore
from modelyard.store.s3 import S3Store
from modelyard.store.upload import upload_dataset
from tests.support.cli import run_cli, run_process
from tests.support.console import DIGITS
from tests.support.s3 import keys, moto_server, use_bucket
from tests.unit.store.test_models import register, weights

FILES = ["checksums.json", "lineage.json", "metrics.json", "preprocess.json", "spec.json", "weights.safetensors"]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, home: Path) -> Iterator[tuple[Any, str]]:
    """A fresh bucket as the artifact store, and one database for every home of the test."""
    found = use_bucket(monkeypatch, endpoint)
    if not store_db.engines.database_url():  # --db postgresql already shares one database
        monkeypatch.setenv("MODELYARD_DATABASE_URL", f"sqlite:///{tmp_path / 'shared.db'}")
    yield found
    store_db.close_all()


def test_registration_uploads_every_file_and_puts_the_checksums_last(bucket: tuple[Any, str], home: Path) -> None:
    client, name = bucket
    store = ModelStore(home)
    written: list[str] = []
    events = store.artifacts.client.meta.events  # type: ignore[attr-defined]

    def record(params: dict[str, Any], **_: Any) -> None:
        written.append(params["Key"])

    for call in ("PutObject", "CopyObject", "UploadPart", "CompleteMultipartUpload"):
        events.register(f"provide-client-params.s3.{call}", record)
    try:
        version = register(store, name="m")
    finally:
        for call in ("PutObject", "CopyObject", "UploadPart", "CompleteMultipartUpload"):
            events.unregister(f"provide-client-params.s3.{call}", record)
    assert keys(client, name) == [f"team/models/m/1/{f}" for f in FILES]  # and no .tmp/ key left
    final = [k for k in written if k.startswith("team/models/")]
    assert final[-1] == "team/models/m/1/checksums.json" and len(final) == len(FILES)
    assert all(k.startswith("team/.tmp/") for k in written[: len(FILES) - 1])  # staged before publishing
    manifest = json.loads(client.get_object(Bucket=name, Key="team/models/m/1/checksums.json")["Body"].read())
    for filename, digest in manifest["sha256"].items():
        data = client.get_object(Bucket=name, Key=f"team/models/m/1/{filename}")["Body"].read()
        assert hashlib.sha256(data).hexdigest() == digest
    assert version.path == home / "cache" / "artifacts" / "models" / "m" / "1"
    assert not (home / "artifacts" / "models" / "m" / "1").exists()


def test_a_second_home_loads_and_predicts_what_the_first_registered(
    bucket: tuple[Any, str], home: Path, tmp_path: Path
) -> None:
    client, name = bucket
    spec = {**DIGITS, "name": "shared", "train": {**DIGITS["train"], "epochs": 1}}
    result = workflow.train(spec, home=home, progress=False)
    other = tmp_path / "second-home"
    there = ModelStore(other).get("shared:1")
    assert there.path == other / "cache" / "artifacts" / "models" / "shared" / "1"
    assert sorted(p.name for p in there.path.iterdir()) == sorted(
        k.rsplit("/", 1)[1] for k in keys(client, name) if k.startswith("team/models/shared/1/")
    )
    here_state, there_state = ModelStore(home).get("shared:1").load_state_dict(), there.load_state_dict()
    assert here_state.keys() == there_state.keys()
    assert all(torch.equal(here_state[k], there_state[k]) for k in here_state)
    x = np.random.default_rng(0).uniform(0, 16, size=(5, 64)).astype(np.float32)
    expected = Predictor.load(result.model_ref or "", home=home).predict(x)
    np.testing.assert_array_equal(Predictor.load("shared:1", home=other).predict(x), expected)
    np.save(tmp_path / "x.npy", x)  # and a `modelyard predict` process of a third home, with the same settings
    third = tmp_path / "third-home"
    done = run_process("--home", str(third), "predict", "shared:1", str(tmp_path / "x.npy"), "--json")
    assert done.code == 0, done.err
    probabilities = [r["probabilities"] for r in json.loads(done.out)["predictions"]]
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6)
    assert (third / "cache" / "artifacts" / "models" / "shared" / "1" / "weights.safetensors").is_file()

    ModelStore(other).delete("shared:1")  # from the second home: the objects go, for both
    assert keys(client, name) == []
    assert not there.path.exists()
    with pytest.raises(NotFoundError):
        ModelStore(home).get("shared:1")


def test_a_failure_mid_upload_leaves_no_version(
    bucket: tuple[Any, str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, name = bucket
    store = ModelStore(home)
    real_copy, copies = S3Store._copy, []

    def failing_copy(self: S3Store, source: str, target: str) -> None:
        copies.append(target)
        if len(copies) == 3:  # two files already at the version's key, no checksums.json yet
            raise StoreError("injected: the connection dropped", field="artifacts")
        real_copy(self, source, target)

    monkeypatch.setattr(S3Store, "_copy", failing_copy)
    with pytest.raises(StoreError, match="injected"):
        register(store, name="m")
    assert keys(client, name) == [] and store.list() == []
    assert [p.name for p in (home / "cache" / "artifacts" / "models" / "m").iterdir()] == []  # no temp folder

    real_upload = client.upload_file
    calls: list[str] = []

    def failing_upload(*args: Any, **kwargs: Any) -> None:
        calls.append(args[2])
        if len(calls) == 2:
            raise OSError("injected: upload cut")
        real_upload(*args, **kwargs)

    monkeypatch.setattr(S3Store, "_copy", real_copy)
    monkeypatch.setattr(store.artifacts.client, "upload_file", failing_upload)  # type: ignore[attr-defined]
    with pytest.raises(StoreError, match="injected: upload cut"):
        register(store, name="m")
    assert keys(client, name) == [] and store.list() == []
    monkeypatch.setattr(store.artifacts.client, "upload_file", real_upload)  # type: ignore[attr-defined]
    assert register(store, name="m").ref == "m:1"  # no number was spent
    assert keys(client, name) == [f"team/models/m/1/{f}" for f in FILES]


def test_objects_without_checksums_are_no_version_and_are_replaced(bucket: tuple[Any, str], home: Path) -> None:
    client, name = bucket
    client.put_object(Bucket=name, Key="team/models/m/1/weights.safetensors", Body=b"half")  # a registration died
    client.put_object(Bucket=name, Key="team/models/m/1/stray.bin", Body=b"x")
    version = register(ModelStore(home), name="m")
    assert version.ref == "m:1"
    assert keys(client, name) == [f"team/models/m/1/{f}" for f in FILES]
    assert torch.equal(version.load_state_dict()["fc.weight"], weights()["fc.weight"])


def test_a_damaged_object_is_refused_by_its_sha256(bucket: tuple[Any, str], home: Path, tmp_path: Path) -> None:
    client, name = bucket
    register(ModelStore(home), name="m")
    key = "team/models/m/1/weights.safetensors"
    data = bytearray(client.get_object(Bucket=name, Key=key)["Body"].read())
    data[-1] ^= 0x01  # one flipped bit in the last float: still loads, predicts worse
    client.put_object(Bucket=name, Key=key, Body=bytes(data))
    other = tmp_path / "second-home"
    with pytest.raises(StoreError, match=r"Model m:1's weights.safetensors in s3://.* is not the file registered"):
        ModelStore(other).get("m:1")
    assert [p.name for p in (other / "cache" / "artifacts" / "models" / "m").iterdir()] == []  # nothing half-kept
    np.save(tmp_path / "x.npy", np.zeros((1, 3), dtype=np.float32))
    done = run_cli("--home", str(other), "predict", "m:1", str(tmp_path / "x.npy"))
    assert done.code == 5 and done.err.startswith("error: Model m:1's weights.safetensors in s3://")
    assert len(done.err.strip().splitlines()) == 1


def test_a_lost_checksums_file_is_reported(bucket: tuple[Any, str], home: Path) -> None:
    client, name = bucket
    register(ModelStore(home), name="m")
    client.delete_object(Bucket=name, Key="team/models/m/1/checksums.json")
    with pytest.raises(
        StoreError, match=r"Model m:1 is registered but s3://.*/team/models/m/1/checksums.json is missing"
    ):
        ModelStore(home).get("m:1")


def test_a_version_in_the_bucket_without_a_row_is_never_overwritten(
    bucket: tuple[Any, str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, name = bucket
    register(ModelStore(home), name="m")
    before = keys(client, name)
    monkeypatch.setenv("MODELYARD_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")  # an emptied database
    with pytest.raises(
        StoreError, match=r"Refused to register m:1: its version s3://.*/team/models/m/1 already exists"
    ):
        register(ModelStore(tmp_path / "third-home"), name="m", seed=3)
    assert keys(client, name) == before


def test_a_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("MODELYARD_ARTIFACTS_URL", "s3://bucket/prefix")
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 raises ImportError
    with pytest.raises(MissingDependencyError) as caught:
        register(ModelStore(home), name="m")
    assert str(caught.value) == (
        "The S3 artifact store (MODELYARD_ARTIFACTS_URL=s3://...) needs the Python package boto3: "
        "install it with pip install 'modelyard[s3]'"
    )


@pytest.mark.parametrize("url", ["http://host/bucket", "s3://", "bucket/prefix"])
def test_a_bad_artifacts_url_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, home: Path, url: str
) -> None:
    monkeypatch.setenv("MODELYARD_ARTIFACTS_URL", url)
    with pytest.raises(
        StoreError,
        match=r"Invalid value for `MODELYARD_ARTIFACTS_URL`: expected an S3 URL like s3://BUCKET/PREFIX .* received",
    ):
        register(ModelStore(home), name="m")


def test_a_dataset_stored_in_one_home_is_read_and_trained_on_in_another(
    bucket: tuple[Any, str], home: Path, tmp_path: Path
) -> None:
    client, name = bucket
    rng = np.random.default_rng(0)
    table = tmp_path / "points.csv"
    rows = ["a,b,y"] + [f"{a:.4f},{b:.4f},{int(a > b)}" for a, b in rng.uniform(0, 1, size=(120, 2))]
    table.write_text("\n".join(rows) + "\n")
    stored = upload_dataset(table, name="points", home=home)
    assert stored.ref == "points:1"
    assert keys(client, name) == [
        f"team/datasets/points/1/{f}" for f in ("checksums.json", "data.parquet", "lineage.json", "report.json")
    ]
    other = tmp_path / "second-home"
    there = DatasetStore(other)
    assert [v.ref for v in there.list()] == ["points:1"] and there.names() == ["points"]
    found = there.get("points")
    assert found.path == other / "cache" / "artifacts" / "datasets" / "points" / "1"
    assert found.data_path().read_bytes() == stored.data_path().read_bytes()
    assert found.to_dict() == stored.to_dict()
    spec = {
        "name": "on-points",
        "seed": 0,
        "data": {"dataset": "points:1", "target": "y", "validation": 0.2, "test": 0.2},
        "model": {"input": [2], "layers": [{"dense": 2, "activation": "softmax"}]},
        "train": {"loss": "cross_entropy", "optimizer": "adam", "lr": 0.05, "batch_size": 16, "epochs": 1},
    }
    trained = workflow.train(spec, home=other, progress=False)  # the second home trains on the first's data
    lineage = ModelStore(home).get(trained.model_ref or "").lineage["dataset"]  # read back in the first home
    assert (lineage["ref"], lineage["sha256"]) == ("points:1", stored.sha256)
    assert DatasetStore(other).register("points", table=b"PAR1 x", report={}, lineage={}).ref == "points:2"


def test_listing_datasets_reads_their_small_files_and_downloads_no_table(
    bucket: tuple[Any, str], home: Path, tmp_path: Path
) -> None:
    client, name = bucket
    table = tmp_path / "points.csv"
    table.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(50)))
    stored = upload_dataset(table, name="points", home=home)
    there = DatasetStore(tmp_path / "second-home")
    fetched: list[str] = []
    events = there.artifacts.client.meta.events  # type: ignore[attr-defined]

    def record(params: dict[str, Any], **_: Any) -> None:
        fetched.append(params["Key"].rsplit("/", 1)[-1])

    events.register("provide-client-params.s3.GetObject", record)
    try:
        listed = [found.to_dict() for found in there.list()]
    finally:
        events.unregister("provide-client-params.s3.GetObject", record)
    assert listed == [stored.to_dict()]
    assert "data.parquet" not in fetched and set(fetched) == {"checksums.json", "report.json", "lineage.json"}
    assert not (tmp_path / "second-home" / "cache" / "artifacts" / "datasets").exists()
    client.put_object(Bucket=name, Key="team/datasets/points/1/report.json", Body=b'{"rows": 1}')
    with pytest.raises(StoreError, match="report.json .* is not the file registered"):
        DatasetStore(tmp_path / "third-home").list()[0].to_dict()


def test_a_dataset_whose_upload_fails_midway_is_no_version(
    bucket: tuple[Any, str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, name = bucket
    real_copy = S3Store._copy

    def failing_copy(self: S3Store, source: str, target: str) -> None:
        if target.endswith("/lineage.json"):
            raise StoreError("injected: the connection dropped", field="artifacts")
        real_copy(self, source, target)

    monkeypatch.setattr(S3Store, "_copy", failing_copy)
    with pytest.raises(StoreError, match="injected"):
        DatasetStore(home).register("d", table=b"PAR1 table", report={}, lineage={})
    assert keys(client, name) == [] and DatasetStore(home).list() == []


def test_the_cache_is_refetched_when_its_marker_differs_and_shared_by_concurrent_readers(
    bucket: tuple[Any, str], home: Path, tmp_path: Path
) -> None:
    register(ModelStore(home), name="m")
    cached = home / "cache" / "artifacts" / "models" / "m" / "1"
    (cached / "weights.safetensors").write_bytes(b"stale")
    (cached / "checksums.json").write_text('{"sha256": {}}\n')  # a copy of another version 1 (an older bucket)
    version = ModelStore(home).get("m:1")
    assert torch.equal(version.load_state_dict()["fc.weight"], weights()["fc.weight"])

    other, errors, paths_seen = tmp_path / "second-home", [], []

    def read() -> None:
        try:
            found = ModelStore(other).get("m:1")
            paths_seen.append(found.path)
            found.load_state_dict()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(set(paths_seen)) == 1
    assert sorted(p.name for p in (other / "cache" / "artifacts" / "models" / "m").iterdir()) == ["1"]


def test_gc_lists_and_removes_what_no_row_owns_in_the_bucket(
    bucket: tuple[Any, str], home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, name = bucket
    register(ModelStore(home), name="m")
    DatasetStore(home).register("d", table=b"PAR1 table", report={}, lineage={})
    kept = keys(client, name)
    client.put_object(Bucket=name, Key="team/models/m/2/weights.safetensors", Body=b"12345")  # died mid-copy
    client.put_object(Bucket=name, Key="team/.tmp/0123abcd/spec.json", Body=b"{}")  # an upload in progress
    client.put_object(Bucket=name, Key="team/notes/readme.txt", Body=b"not ours")
    shared = os.environ["MODELYARD_DATABASE_URL"]
    monkeypatch.setenv("MODELYARD_DATABASE_URL", f"sqlite:///{tmp_path / 'other.db'}")
    register(ModelStore(tmp_path / "other-home"), name="n")  # a row in another database only
    monkeypatch.setenv("MODELYARD_DATABASE_URL", shared)
    url = f"s3://{name}/team"
    listed = [(o.path, o.reason, o.size_bytes) for o in gc.collect(home)]
    n_size = sum(
        client.head_object(Bucket=name, Key=k)["ContentLength"] for k in keys(client, name) if "/models/n/" in k
    )
    assert listed == []  # each written just now: it may be a registration still copying or committing
    monkeypatch.setattr(gc, "_TMP_GRACE_S", -60.0)  # now each counts as dead
    listed = [(o.path, o.reason, o.size_bytes) for o in gc.collect(home)]
    assert listed == [
        (f"{url}/.tmp/0123abcd/", "left by an interrupted registration", 2),
        (f"{url}/models/m/2/", "left by a registration that died before publishing", 5),
        (f"{url}/models/n/1/", "version n:1, which has no row", n_size),
    ]  # the data set and the foreign object are not listed
    assert len(keys(client, name)) == len(kept) + 3 + len(FILES)  # nothing removed by a listing
    removed = gc.collect(home, remove=True)
    assert [o.path for o in removed] == [f"{url}/.tmp/0123abcd/", f"{url}/models/m/2/", f"{url}/models/n/1/"]
    assert keys(client, name) == sorted([*kept, "team/notes/readme.txt"])
    assert ModelStore(home).get("m:1").load_state_dict().keys() == weights().keys()


def test_a_missing_bucket_is_one_line_naming_it(
    bucket: tuple[Any, str], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_ARTIFACTS_URL", "s3://no-such-bucket-here/team")
    with pytest.raises(StoreError) as caught:
        register(ModelStore(home), name="m")
    message = str(caught.value)
    # the first call that reaches the bucket fails: the check that no pipeline has the name lists it
    assert message.startswith("The artifact store s3://no-such-bucket-here/team could not list team/pipelines/m/")
    assert "NoSuchBucket" in message and "\n" not in message
    assert ModelStore(home).list() == []
