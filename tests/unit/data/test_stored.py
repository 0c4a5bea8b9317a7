"""The `dataset` source: a stored table by name, its lineage carried to the model version."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from modelyard.data.sources import load_source
from modelyard.spec import load_spec
from modelyard.store.datasets import DatasetStore
from tests.support.cli import run_cli


def _store(home: Path | None = None) -> str:
    import pandas as pd

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0] * 5, "b": [1.0, 0.0, 1.0, 0.0] * 5, "y": ["p", "q"] * 10})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    lineage = {"operation": "anonymize", "source": {"sha256": "ab" * 32}, "steps": [{"type": "drop", "options": {}}]}
    report = {"k_anonymity": {"k": 5, "k_achieved": 10, "classes": 2}}
    return DatasetStore(home).register("tab", table=buffer.getvalue(), report=report, lineage=lineage).ref


def _spec(ref: str) -> dict:
    return {
        "name": "on-tab",
        "data": {"source": "dataset", "name": ref, "target": "y"},
        "model": {"input": [2], "layers": [{"dense": 2}]},
        "train": {"loss": "cross_entropy", "epochs": 1},
    }


def test_the_source_reads_the_table_and_its_lineage(home: Path) -> None:
    ref = _store()
    raw = load_source(load_spec(_spec(ref)).data.source)
    assert raw.x_train.shape == (20, 2) and raw.class_names == ["p", "q"] and raw.feature_names == ["a", "b"]
    assert raw.lineage["ref"] == "tab:1" and raw.lineage["source_sha256"] == "ab" * 32
    assert raw.lineage["steps"] == ["drop"] and raw.lineage["k_anonymity"] == {"k": 5, "k_achieved": 10}


def test_a_missing_dataset_is_one_line(home: Path) -> None:
    from modelyard.errors import NotFoundError

    with pytest.raises(NotFoundError, match=r"Dataset 'tab' not found for `data.name`"):
        load_source(load_spec(_spec("tab:1")).data.source)


def test_train_with_home_reads_the_dataset_of_that_store(tmp_path: Path, home: Path) -> None:
    """`modelyard --home OTHER train` (and eval) finds OTHER's dataset though $MODELYARD_HOME names another store."""
    import yaml

    other = tmp_path / "other-store"
    _store(other)
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(_spec("tab:1")))
    result = run_cli("--home", str(other), "train", str(spec))
    assert result.code == 0, result.err
    shown = run_cli("--home", str(other), "models", "show", "on-tab")
    assert "trained on dataset tab:1 (anonymized, k = 10)" in shown.out
    evaluated = run_cli("--home", str(other), "eval", "on-tab")  # re-reads the dataset for the test split
    assert evaluated.code == 0, evaluated.err
    assert DatasetStore().list() == []  # nothing in $MODELYARD_HOME's store


def test_a_bare_name_is_pinned_to_its_version_and_the_card_names_the_dataset(home: Path) -> None:
    """A run of `name: tab` records tab:1, so a newer tab:2 does not change what evaluating or resuming it reads."""
    from modelyard.cards import model_card
    from modelyard.store import ModelStore, RunStore
    from modelyard.workflow import train

    _store()
    result = train(_spec("tab"), progress=False)
    assert RunStore().get(result.run_id).spec["data"]["source"]["options"]["name"] == "tab:1"
    assert _store() == "tab:2"
    version = ModelStore().get(result.model_ref)
    assert version.lineage["dataset"]["ref"] == "tab:1"
    card = model_card(None, result.model_ref)
    assert (
        f"Trained on the stored dataset tab:1 (sha256 {version.lineage['dataset']['sha256']}), made by anonymize "
        f"(drop), k-anonymous with k = 10 (asked 5); its source file's sha256 is {'ab' * 32}." in card
    )
