"""Model cards say what the store recorded: every number is checked against the store's own records
(the version's metrics and lineage, its run's history and environment) or an independent count
(the parameters of the network torch loads back)."""

from __future__ import annotations

import dataclasses
import json
import platform
from pathlib import Path

import pytest
import torch

from modelyard.cards import gather, model_card, render
from modelyard.cards.text import number
from modelyard.compression.quantize import stored_parameter_count
from modelyard.errors import NotFoundError
from modelyard.nn import build_model, parameter_count
from modelyard.predict import Predictor
from modelyard.spec import load_spec
from modelyard.store import ModelStore, RunStore
from tests.support.cards import family, front_matter, pairs, section, tables
from tests.support.console import train_digits
from tests.support.serving import register


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    home = tmp_path_factory.mktemp("cards") / "home"
    return home, family(home)


def loaded_parameters(ref: str, home: Path) -> int:
    return stored_parameter_count(Predictor.load(ref, home=home).network)


def test_trained_card_matches_the_version_and_its_run(store: tuple[Path, dict[str, str]]) -> None:
    home, refs = store
    ref = refs["trained"]
    card = model_card(home, ref)
    version = ModelStore(home).get(ref)
    run = RunStore(home).get(str(version.run_id))
    meta = front_matter(card)
    assert (meta["model_name"], meta["version"], meta["ref"]) == ("digits-small", version.version, ref)
    assert (meta["kind"], meta["task"], meta["library_name"]) == ("trained", "classification", "modelyard")
    assert "parent" not in meta and meta["datasets"] == ["digits"]
    network = Predictor.load(ref, home=home).network
    assert meta["parameters"] == sum(p.numel() for p in network.parameters()) == 64 * 32 + 32 + 32 * 10 + 10
    summary = pairs(card.splitlines()[card.splitlines().index(f"# Model card: {ref}") :])
    assert summary["parameters"] == f"{meta['parameters']:,}" and summary["training run"] == run.id
    layers = tables(section(card, "Spec"))[0]
    assert sum(int(row[3].replace(",", "")) for row in layers[1:]) == meta["parameters"]
    test = version.metrics["test"]
    assert meta["metrics"] == {k: float(f"{test[k]:.4g}") for k in ("loss", "accuracy")}
    assert meta["metrics_split"] == "test"
    assert pairs(section(card, "Metrics")) == {k: f"{test[k]:.4g}" for k in ("loss", "accuracy")}
    # the run's environment, and the versions this interpreter really has
    assert meta["library_versions"]["torch"] == run.env["packages"]["torch"] == torch.__version__
    assert meta["library_versions"]["python"] == run.env["python"] == platform.python_version()
    assert pairs(section(card, "Framework versions"))["torch"] == torch.__version__
    [history] = tables(section(card, "Training history"))
    head, rows = history[0], history[1:]
    assert len(rows) == len(run.history) == 3
    for row, record in zip(rows, run.history):
        cells = dict(zip(head, row))
        assert int(cells["epoch"]) == record["epoch"]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
            assert cells[key] == f"{record[key]:.4g}"
    assert f"best epoch {run.summary['best_epoch']}" in "\n".join(section(card, "Training history"))
    lineage = section(card, "Lineage")
    assert lineage[1].startswith(f"Trained from its spec by run {run.id}")
    assert f"Derived from it: {refs['int8']} (int8), {refs['distilled']} (distilled)." in lineage
    assert "recorded under `privacy`): none recorded." in "\n".join(section(card, "Privacy"))


def test_int8_card_names_its_parent_and_the_quantization(store: tuple[Path, dict[str, str]]) -> None:
    home, refs = store
    ref, parent = refs["int8"], refs["trained"]
    card = model_card(home, ref)
    version = ModelStore(home).get(ref)
    info = json.loads((version.path / "compression.json").read_text())
    meta = front_matter(card)
    assert (meta["kind"], meta["parent"]) == ("int8", parent)
    assert meta["parameters"] == loaded_parameters(ref, home) == loaded_parameters(parent, home)
    facts = pairs(section(card, "Compression and export"))
    assert facts["operation"] == "quantize" and facts["options.dtype"] == "int8"
    assert facts["options.mode"] == info["options"]["mode"] == "dynamic"
    assert facts["quantization.engine"] == info["quantization"]["engine"]
    assert facts["onnx.check.class_agreement"] == f"{info['onnx']['check']['class_agreement']:.4g}"
    int8_values = sum(t.numel() for k, t in version.load_state_dict().items() if t.dtype == torch.int8)
    assert f"I8 {int8_values:,}" in facts["stored values"]
    lineage = tables(section(card, "Lineage"))[0]
    assert [row[:3] for row in lineage[1:]] == [
        [ref, "int8", f"quantize of {parent}"],
        [parent, "trained", f"run {ModelStore(home).get(parent).run_id}"],
    ]
    before_after = tables(section(card, "Compression and export"))[1]
    assert before_after[0][1:] == [parent, ref]
    weights = {row[0]: row[1:] for row in before_after[1:]}["weights_bytes"]
    assert weights == [
        f"{version.lineage['metrics_before']['weights_bytes']:,}",
        f"{version.lineage['metrics_after']['weights_bytes']:,}",
    ]
    assert "No per-epoch history" in "\n".join(section(card, "Training history"))
    run_id = ModelStore(home).get(parent).run_id
    assert f"Recorded by run {run_id}, which trained {parent}, this version's trained ancestor" in card


def test_distilled_card_names_its_parent_student_and_history(store: tuple[Path, dict[str, str]]) -> None:
    home, refs = store
    ref, parent = refs["distilled"], refs["trained"]
    card = model_card(home, ref)
    version = ModelStore(home).get(ref)
    meta = front_matter(card)
    assert (meta["kind"], meta["parent"]) == ("distilled", parent)
    assert meta["parameters"] == loaded_parameters(ref, home) == 64 * 8 + 8 + 8 * 10 + 10
    facts = pairs(section(card, "Compression and export"))
    assert facts["operation"] == "distill"
    assert facts["options.temperature"] == "2" and facts["options.alpha"] == "0.5"
    assert facts["options.student_parameters"] == f"{meta['parameters']:,}"
    [history] = tables(section(card, "Training history"))
    assert [int(row[0]) for row in history[1:]] == [row["epoch"] for row in version.metrics["history"]] == [1, 2, 3]
    losses = [row[history[0].index("loss")] for row in history[1:]]
    assert losses == [f"{row['loss']:.4g}" for row in version.metrics["history"]]
    assert "distill step that made it from " + parent in "\n".join(section(card, "Training history"))
    assert meta["metrics"]["accuracy"] == float(f"{version.metrics['test']['accuracy']:.4g}")


@pytest.mark.parametrize("kind", ["trained", "int8", "distilled"])
def test_cards_hold_yaml_front_matter_and_no_python_reprs(store: tuple[Path, dict[str, str]], kind: str) -> None:
    home, refs = store
    card = model_card(home, refs[kind])
    meta = front_matter(card)  # parses as YAML
    assert set(meta) >= {"model_name", "version", "kind", "task", "metrics", "library_versions", "parameters"}
    for needle in ("None", "True", "False", "{'", "['", "e+0"):
        assert needle not in card, needle
    assert card.count("```yaml") == 1 and card.endswith("\n")


def test_numbers_are_rounded_for_people() -> None:
    cases = {0.9166666865: "0.9167", 127173.02: "127,173", 2410: "2,410", 3.2e-05: "3.2e-05", 0.003: "0.003"}
    assert {value: number(value) for value in cases} == cases
    assert number(True) == "yes" and number(float("nan")) == "nan"


def test_privacy_facts_are_shown_when_recorded(store: tuple[Path, dict[str, str]]) -> None:
    home, refs = store
    facts = gather(home, refs["trained"])
    recorded = {"epsilon": 1.234567, "delta": 1e-05, "mechanism": "dp-sgd"}
    with_privacy = dataclasses.replace(
        facts, version=dataclasses.replace(facts.version, metrics={**facts.version.metrics, "privacy": recorded})
    )
    assert pairs(section(render(with_privacy), "Privacy")) == {
        "epsilon": "1.235",
        "delta": "1e-05",
        "mechanism": "dp-sgd",
    }


def test_per_epoch_matrices_stay_out_of_the_history_table_and_a_stored_matrix_is_shown(
    store: tuple[Path, dict[str, str]],
) -> None:
    home, refs = store
    facts = gather(home, refs["trained"])
    matrix = [[5, 1], [2, 7]]
    history = [{**row, "confusion_matrix": matrix} for row in facts.history]
    metrics = {
        **facts.version.metrics,
        "history": history,
        "test": {**facts.version.metrics["test"], "confusion_matrix": matrix},
    }
    card = render(dataclasses.replace(facts, version=dataclasses.replace(facts.version, metrics=metrics)))
    [table] = tables(section(card, "Training history"))
    assert "confusion_matrix" not in table[0] and len(table) == 1 + len(history)
    shown = tables(section(card, "Metrics"))[1]
    assert [row[1:] for row in shown[1:]] == [["5", "1"], ["2", "7"]]
    assert "confusion_matrix" not in front_matter(card)["metrics"]


def test_parameters_of_a_version_without_summary_come_from_its_weights(home: Path) -> None:
    """Versions registered before summary.json: counted in the safetensors header, batch-norm statistics left out."""
    spec = load_spec(
        {
            "name": "bn",
            "data": {"source": "xor"},
            "model": {"input": [4], "layers": [{"dense": 6}, "batchnorm", {"dense": 2}]},
            "train": {"loss": "mse"},
        }
    )
    network = build_model(spec.model, loss="mse")
    ModelStore(home).register("bn", state_dict=network.state_dict(), spec=spec.to_dict(), preprocess={}, metrics={})
    assert (
        front_matter(model_card(home, "bn:1"))["parameters"] == parameter_count(network) == 4 * 6 + 6 + 12 + 6 * 2 + 2
    )


def test_a_deleted_parent_and_a_missing_run_are_said_not_guessed(home: Path) -> None:
    parent = register("clf", home)
    child = register("clf", home, lineage={"parent": parent, "operation": "prune", "options": {"fraction": 0.5}})
    ModelStore(home).delete(parent)
    card = model_card(home, child)
    assert front_matter(card)["parent"] == parent and front_matter(card)["kind"] == "pruned"
    lineage = tables(section(card, "Lineage"))[0]
    assert [row[:2] for row in lineage[1:]] == [[child, "pruned"], [parent, "deleted"]]
    assert "Framework versions: none recorded (registered without a training run)." in card
    with pytest.raises(NotFoundError, match="has no version 9"):
        model_card(home, "clf:9")


def test_a_card_outlives_its_training_run(home: Path) -> None:
    ref = train_digits(home)
    version = ModelStore(home).get(ref)
    RunStore(home).delete(str(version.run_id))
    card = model_card(home, ref)
    assert f"Framework versions: none recorded (the run that trained {ref} is no longer in the store)." in card
    assert front_matter(card)["library_versions"] == {}
    assert pairs(card.splitlines()[card.splitlines().index(f"# Model card: {ref}") :])["training run"] == (
        f"{version.run_id} (deleted)"
    )
    [history] = tables(section(card, "Training history"))  # registered with the version, so it stays
    assert [row[history[0].index("loss")] for row in history[1:]] == [
        f"{r['loss']:.4g}" for r in version.metrics["history"]
    ]
