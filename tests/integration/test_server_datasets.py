"""A real `modelyard server`: `datasets upload --server` over HTTP → a job trains on `data: {dataset: N:k}` →
the version's lineage and `models show` / `runs show` name the dataset and its sha256; a job naming a server
file outside the data folders is refused in one line that shows none of it; an upload past the limit stores nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from modelyard.store import ModelStore, RunStore
from modelyard.store.datasets import DatasetStore
from tests.support.cli import run_cli
from tests.support.server_process import Server, start_server

FRAME = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0] * 25, "b": [1.0, 0.0, 1.0, 0.0] * 25, "y": ["p", "q"] * 50})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("datasets") / "home"
    data = tmp_path_factory.mktemp("data")
    srv = start_server(home, "--workers", "1", "--data-dir", str(data), "--max-data-mb", "1")
    srv.home, srv.data = home, data  # type: ignore[attr-defined]
    yield srv
    assert srv.stop() in (0, -15), srv.output()


def _spec(path: Path, data: dict) -> str:
    body = {
        "name": "on-tab",
        "seed": 0,
        "data": data,
        "model": {"input": [2], "layers": [{"dense": 2}]},
        "train": {"loss": "cross_entropy", "epochs": 2},
    }
    path.write_text(yaml.safe_dump(body))
    return str(path)


def test_upload_train_from_the_dataset_and_the_lineage_names_it(server: Server, tmp_path: Path) -> None:
    home, url = server.home, server.url  # type: ignore[attr-defined]
    table = tmp_path / "t.csv"
    FRAME.to_csv(table, index=False)
    uploaded = run_cli("datasets", "upload", str(table), "--name", "tab", "--server", url, "--json")
    assert uploaded.code == 0, uploaded.err
    info = json.loads(uploaded.out)
    stored = DatasetStore(home).get("tab:1")
    assert info == stored.to_dict() and info["rows"] == 100
    assert info["lineage"]["source"]["sha256"] == hashlib.sha256(table.read_bytes()).hexdigest()

    folder = tmp_path / "parts"
    folder.mkdir()
    FRAME.iloc[:40].to_csv(folder / "1.csv", index=False)
    FRAME.iloc[40:].to_csv(folder / "2.csv", index=False)
    joined = run_cli("datasets", "upload", str(folder), "--name", "tab", "--server", url)
    assert joined.code == 0 and joined.out.startswith("stored dataset tab:2: 100 rows, 3 columns"), joined.err
    pd.testing.assert_frame_equal(
        pd.read_parquet(DatasetStore(home).get("tab:2").data_path()), FRAME, check_dtype=False
    )
    listed = run_cli("datasets", "list", "--server", url, "--json")
    assert [d["dataset"] for d in json.loads(listed.out)] == ["tab:1", "tab:2"]

    job = run_cli(
        "jobs", "submit", _spec(tmp_path / "s.yaml", {"dataset": "tab:1", "target": "y"}), "--wait", "--url", url
    )
    assert job.code == 0 and "succeeded: registered model on-tab:1" in job.out, job.out + job.err
    version = ModelStore(home).get("on-tab:1")
    assert version.lineage["dataset"]["ref"] == "tab:1" and version.lineage["dataset"]["sha256"] == info["sha256"]
    assert version.lineage["dataset"]["operation"] == "upload"
    shown = run_cli("--home", str(home), "models", "show", "on-tab")
    assert f"trained on dataset tab:1 (uploaded, sha256 {info['sha256'][:12]})" in shown.out
    run = run_cli("--home", str(home), "runs", "show", version.run_id)
    assert f"dataset tab:1 (sha256 {info['sha256'][:12]})" in run.out
    assert RunStore(home).get(version.run_id).spec["data"]["source"]["options"]["name"] == "tab:1"


def test_a_job_naming_a_server_file_outside_the_data_folders_is_refused(server: Server, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("k3y,y\n1,0\n")
    refused = run_cli(
        "jobs",
        "submit",
        _spec(tmp_path / "s.yaml", {"source": "csv", "path": str(secret), "target": "y"}),
        "--url",
        server.url,
    )
    assert refused.code == 8 and refused.err.count("\n") == 1, refused.err
    assert refused.err.startswith(f"error: data.path: '{secret}' is outside the server's data folders")
    assert "k3y" not in refused.err
    unknown = run_cli(
        "jobs", "submit", _spec(tmp_path / "u.yaml", {"dataset": "nope:1", "target": "y"}), "--url", server.url
    )
    assert unknown.code == 4 and unknown.err.startswith("error: Dataset 'nope' not found for `data.name`"), unknown.err


def test_an_upload_past_the_servers_limit_is_refused_and_stores_nothing(server: Server, tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    big.write_text("a,y\n" + "1.0,0\n" * 200_000)  # 1.2 MB, the server takes 1 MiB
    result = run_cli("datasets", "upload", str(big), "--name", "big", "--server", server.url)
    assert result.code == 3 and result.err.count("\n") == 1, result.err
    assert result.err.startswith("error: Dataset upload too large: expected at most 1048576 bytes, received 1200004")
    assert DatasetStore(server.home).list("big") == []  # type: ignore[attr-defined]
