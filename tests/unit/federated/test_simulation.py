"""A federated spec through ``modelyard.train`` / ``modelyard train``: one history row per round,
the global model registered with lineage, bad input as one line with nothing stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
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


def sites_csv(path: Path, *, missing: bool = False) -> Path:
    """Three sites holding different kinds of points: the class depends on x > y at every site."""
    rng = np.random.default_rng(0)
    rows = ["x,y,site,label"]
    for i in range(240):
        site = ("clinic", "hospital", "lab")[i % 3]
        x, y = rng.uniform(0, 1, 2) + (0.5 if site == "lab" else 0.0)
        rows.append(f"{x:.4f},{y:.4f},{'' if missing and i == 7 else site},{int(x > y)}")
    path.write_text("\n".join(rows) + "\n")
    return path


def column_spec(table: Path, **data: Any) -> dict[str, Any]:
    return {
        "name": "sites",
        "seed": 0,
        "data": {"source": "csv", "path": str(table), "target": "label", "groups": "site", "test": 0.25, **data},
        "model": {"input": [2], "layers": [{"dense": 8, "activation": "relu"}, {"dense": 2, "activation": "softmax"}]},
        "train": {
            "loss": "cross_entropy",
            "optimizer": "adam",
            "lr": 0.05,
            "batch_size": 16,
            "epochs": 1,
            "metrics": ["accuracy"],
        },
        "federated": {"clients": 3, "rounds": 4, "partition": {"column": "site"}},
    }


def test_a_column_partition_trains_each_site_on_its_own_rows(home: Path, tmp_path: Path) -> None:
    from modelyard.data import prepare
    from modelyard.federated.simulation import client_splits
    from modelyard.spec import load_spec

    spec = load_spec(column_spec(sites_csv(tmp_path / "sites.csv")))
    prepared = prepare(spec.data, task="classification", seed=spec.seed)
    assert prepared.feature_names == ["x", "y"]  # the groups column is not a feature
    groups = prepared.train_groups
    assert groups is not None and len(groups) == len(prepared.train)
    # The reference: the training split's rows of each site, in order (sites sorted by name).
    splits = client_splits(spec, prepared)
    for split, site in zip(splits, ("clinic", "hospital", "lab")):
        rows = np.flatnonzero(groups == site)
        assert torch.equal(split.x, prepared.train.x[rows]) and torch.equal(split.y, prepared.train.y[rows])
    lab = splits[2].x.mean(0)  # the lab's points are the shifted ones: the groups are the rows' own
    assert float(lab.min()) > float(splits[0].x.mean(0).max())
    result = modelyard.train(column_spec(tmp_path / "sites.csv"), home=home, progress=False)
    lineage = ModelStore(home).get(result.model_ref).lineage["federated"]
    assert lineage["partition"] == {"type": "column", "column": "site"} and lineage["clients"] == 3
    assert result.test_metrics["accuracy"] > 0.8


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"federated_clients": 4}, "`federated.clients`: expected 3, the number of distinct 'site' values"),
        ({"groups": "place", "partition_column": "place"}, "column 'place' not found"),
        ({"groups": "label", "partition_column": "label"}, "the target column 'label' cannot also name the groups"),
        (
            {"missing": True},
            "(`data.groups`): expected a group name on every row, received a missing value at data row 8",
        ),
        ({"no_groups": True}, "data.groups: expected 'site', the column federated.partition names"),
        ({"partition_column": "region"}, "data.groups: expected 'region', the column federated.partition names"),
    ],
)
def test_a_bad_column_partition_is_one_line_and_stores_nothing(
    home: Path, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    spec = column_spec(sites_csv(tmp_path / "sites.csv", missing=bool(change.get("missing"))))
    if "federated_clients" in change:
        spec["federated"]["clients"] = change["federated_clients"]
    if "groups" in change:
        spec["data"]["groups"] = change["groups"]
    if change.get("no_groups"):
        del spec["data"]["groups"]
    if "partition_column" in change:
        spec["federated"]["partition"] = {"column": change["partition_column"]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = run_cli("train", str(path))
    assert out.code != 0 and message in out.err, out.err
    assert len(out.err.strip().splitlines()) == 1
    assert RunStore(home).list() == [] and ModelStore(home).list() == []
