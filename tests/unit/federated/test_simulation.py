"""A federated spec through ``modelyard.train`` / ``modelyard train``: one history row per round,
the global model registered with lineage, bad input as one line with nothing stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import modelyard
from modelyard.store import ModelStore, RunStore
from tests.support.cli import run_cli
from tests.support.compression import digits_spec


def federated_spec(**section: Any) -> dict[str, Any]:
    spec = digits_spec(epochs=1, hidden=(32,))
    spec["train"]["lr"] = 0.01
    spec["federated"] = {"clients": 4, "rounds": 3, "partition": {"dirichlet": 0.5}, **section}
    return spec


def test_a_federated_run_logs_each_round_and_registers_the_global_model_with_lineage(home: Path) -> None:
    result = modelyard.train(federated_spec(clients_per_round=3, strategy="fedadam"), home=home, progress=False)
    run = RunStore(home).get(result.run_id)
    assert [row["epoch"] for row in run.history] == [1, 2, 3]
    assert all(row["clients"] == 3 and 0.0 <= row["val_accuracy"] <= 1.0 for row in run.history)
    version = ModelStore(home).get(result.model_ref)
    lineage = version.lineage["federated"]
    assert lineage["rounds"] == 3 and lineage["clients"] == 4 and lineage["clients_per_round"] == 3
    assert lineage["strategy"]["type"] == "fedadam" and lineage["partition"] == {"type": "dirichlet", "alpha": 0.5}
    # The registered weights are the last global model: prediction reproduces the test accuracy.
    assert version.metrics["test"]["accuracy"] == pytest.approx(result.test_metrics["accuracy"])


def test_fedavg_learns_digits(home: Path) -> None:
    result = modelyard.train(federated_spec(rounds=6, partition="iid"), home=home, progress=False)
    assert result.test_metrics["accuracy"] > 0.85  # a 10-class task: chance is 0.1


def test_more_clients_than_samples_is_one_line_and_stores_nothing(home: Path, tmp_path: Path) -> None:
    spec = federated_spec(clients=50)
    spec["data"]["limit"] = 40
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = run_cli("train", str(path))
    assert out.code != 0 and "`federated.clients`: expected at most the" in out.err
    assert len(out.err.strip().splitlines()) == 1
    assert RunStore(home).list() == [] and ModelStore(home).list() == []


def test_secure_aggregation_of_one_client_per_round_is_one_line_and_stores_nothing(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(federated_spec(clients_per_round=1, secure_aggregation=True)))
    out = run_cli("train", str(path))
    assert out.code != 0 and "secure_aggregation: expected clients_per_round >= 2" in out.err
    assert len(out.err.strip().splitlines()) == 1
    assert RunStore(home).list() == [] and ModelStore(home).list() == []


def test_a_target_epsilon_no_noise_reaches_is_one_line_and_stores_nothing(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(federated_spec(dp={"epsilon": 1e-7, "delta": 1e-3})))
    out = run_cli("train", str(path))
    assert out.code != 0 and "`federated.dp.epsilon`: 1e-07 at delta 0.001 over 3 rounds needs more noise" in out.err
    assert len(out.err.strip().splitlines()) == 1
    assert RunStore(home).list() == [] and ModelStore(home).list() == []
