"""Two real `modelyard server` processes sharing one database and one S3 bucket (moto's server mode):
a job trained by the first server's worker registers into the bucket, and the second server, with
its own home and no workers, lists and opens that version from its own cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from modelyard.store import ModelStore
from modelyard.store import db as store_db
from tests.support.s3 import keys, moto_server, use_bucket
from tests.support.server_process import spec, start_server, workers_alive


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    with moto_server() as endpoint:
        found = use_bucket(monkeypatch, endpoint)
        if not store_db.engines.database_url():  # --db postgresql already shares one database
            monkeypatch.setenv("MODELYARD_DATABASE_URL", f"sqlite:///{tmp_path / 'shared.db'}")
        yield found
        store_db.close_all()


def test_a_version_trained_on_one_server_is_served_from_the_bucket_by_another(
    shared: tuple[Any, str], tmp_path: Path
) -> None:
    client, bucket = shared
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
    first = start_server(tmp_path / "a" / "home", "--workers", "1", ready=workers_alive, timeout=180)
    second = start_server(tmp_path / "b" / "home", "--workers", "0")
    try:
        job = first.submit({"spec": spec("sharedjob", n=800, epochs=2)})
        done = first.wait_job(job["id"], timeout=240)
        assert done["status"] == "succeeded" and done["model_ref"] == "sharedjob:1", first.output()
        assert "team/models/sharedjob/1/checksums.json" in keys(client, bucket)

        listed = second.get("/v1/models").json()["models"]
        assert [m["ref"] for m in listed] == ["sharedjob:1"]
        shown = second.get("/v1/models/sharedjob/versions/1")  # loads the model: fetched into b's cache
        assert shown.status_code == 200, second.output()
        cached = tmp_path / "b" / "home" / "cache" / "artifacts" / "models" / "sharedjob" / "1"
        assert (cached / "weights.safetensors").is_file()
        here = ModelStore(tmp_path / "a" / "home").get("sharedjob:1").load_state_dict()
        there = ModelStore(tmp_path / "b" / "home").get("sharedjob:1").load_state_dict()
        assert all(torch.equal(here[k], there[k]) for k in here)
        assert not (tmp_path / "a" / "home" / "artifacts" / "models" / "sharedjob").exists()
    finally:
        assert first.stop() in (0, -15), first.output()
        assert second.stop() in (0, -15), second.output()
