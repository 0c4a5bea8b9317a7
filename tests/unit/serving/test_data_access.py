"""What a served model's explanations may read: control-plane replicas only the server's data folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelyard
from modelyard.server.deployments.replicas import ReplicaConfig
from modelyard.serving import ServeConfig
from modelyard.serving.server import build_app
from tests.support.serving import client

pytestmark = pytest.mark.anyio


def _train_on_csv(folder: Path, home: Path) -> str:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    rows = ["a,b,c,y", *(f"{a:.4f},{b:.4f},{c:.4f},{a - b:.4f}" for a, b, c in x)]
    (folder / "table.csv").write_text("\n".join(rows) + "\n")
    spec = {
        "name": "tab",
        "data": {"source": "csv", "path": str(folder / "table.csv"), "target": "y", "validation": 0.2},
        "model": {"input": [3], "layers": [{"dense": 1}]},
        "train": {"loss": "mse", "optimizer": "adam", "lr": 0.01, "batch_size": 16, "epochs": 1},
    }
    return modelyard.train(spec, home=home).model_ref


async def test_a_confined_server_never_reads_training_data_outside_its_folders(home: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    ref = _train_on_csv(outside, home)
    body = {"instances": [[0.1, 0.2, 0.3]], "method": "shap"}
    confined = build_app([ref], ServeConfig(backend="torch", data_dirs=[]), home)
    async with client(confined) as http:
        r = await http.post("/v1/models/tab/explain", json=body)
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "DataAccessError" and "outside the server's data folders" in r.json()["message"]
    allowed = build_app([ref], ServeConfig(backend="torch", data_dirs=[str(outside)]), home)
    open_server = build_app([ref], ServeConfig(backend="torch"), home)  # a user's own `modelyard serve`
    for app in (allowed, open_server):
        async with client(app) as http:
            r = await http.post("/v1/models/tab/explain", json=body)
        assert r.status_code == 200, r.text


def test_replicas_run_with_the_control_planes_data_rule(tmp_path: Path) -> None:
    config = ReplicaConfig(
        ref="tab:1", home=tmp_path, api_key="k" * 20, data_dirs=("/data/a", "/data/b"), max_data_mb=128
    )
    command = config.command(9000)
    assert "--confine-data" in command
    assert command[command.index("--max-data-mb") + 1] == "128"
    assert [command[i + 1] for i, arg in enumerate(command) if arg == "--data-dir"] == ["/data/a", "/data/b"]
