"""train.privacy end to end: the epsilon spent recorded with the run and the version (models show,
the API's version, the model card), bad input as one line with nothing stored, the per-data-set budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import modelyard
from modelyard.cli._fmt import fmt
from modelyard.store import ModelStore, RunStore
from modelyard.store.privacy_ledger import dataset_id, spent
from tests.support.cli import run_cli
from tests.support.compression import digits_spec

pytest.importorskip("opacus")

PRIVACY = {"epsilon": 3.0, "delta": 1e-4, "max_grad_norm": 1.0}


def private_spec(**privacy: object) -> dict:
    spec = digits_spec(epochs=2)
    spec["train"].update(lr=0.01, privacy={**PRIVACY, **privacy})
    return spec


def test_the_epsilon_spent_is_recorded_with_the_run_and_the_version_and_shown(home: Path) -> None:
    result = modelyard.train(private_spec(), home=home, progress=False)
    version = ModelStore(home).get(result.model_ref)
    recorded = version.metrics["privacy"]
    assert 2.99 <= recorded["epsilon"] <= 3.0 and recorded["delta"] == 1e-4
    assert recorded["steps"] == recorded["planned_steps"] > 0 and recorded["clipping"] == "ghost"
    assert RunStore(home).get(result.run_id).summary["privacy"] == recorded
    shown = run_cli("models", "show", result.model_ref, "--json")
    assert shown.code == 0 and json.loads(shown.out)["privacy"] == recorded
    text = run_cli("models", "show", result.model_ref)
    assert f"privacy: ({fmt(recorded['epsilon'])}, 0.0001)-differential privacy" in text.out  # the CLI's rounding rule
    card = run_cli("models", "card", result.model_ref)
    assert f"{recorded['epsilon']}" in card.out or f"{recorded['epsilon']:.4g}" in card.out
    assert spent(home, dataset_id({"type": "digits", "options": {}})) == 3.0


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"epsilon": 0}, "train.privacy.epsilon", "expected a number > 0, received 0"),
        ({"epsilon": -1}, "train.privacy.epsilon", "expected a number > 0"),
        ({"delta": 0.01}, "train.privacy.delta", "expected a value below 1/N"),
        ({"layers": True}, "model.layers[1]", "replace batchnorm with groupnorm"),
    ],
)
def test_bad_private_input_is_one_line_and_stores_nothing(
    home: Path, tmp_path: Path, change: dict, field: str, words: str
) -> None:
    spec = private_spec(**{k: v for k, v in change.items() if k != "layers"})
    if "layers" in change:
        spec["model"]["layers"].insert(1, "batchnorm")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = run_cli("train", str(path), "--no-progress")
    assert result.code == 2, result.out + result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"`{field}`" in lines[0] and words in lines[0]
    assert RunStore(home).list() == [] and ModelStore(home).list() == []


def test_a_data_sets_budget_refuses_the_run_that_would_exceed_it(home: Path, tmp_path: Path) -> None:
    modelyard.train(private_spec(budget=5.0), home=home, progress=False)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(private_spec(budget=5.0)))
    result = run_cli("train", str(path), "--no-progress")
    assert result.code == 2
    line = result.err.strip()
    assert "privacy budget is 5 and 3 is spent" in line and "at most 2 is left; received 3" in line
    assert len(RunStore(home).list()) == 1  # the refused run was never created
    # What is left can still be spent, to the last bit.
    ok = modelyard.train(private_spec(budget=5.0, epsilon=2.0), home=home, progress=False)
    assert ok.model_ref and spent(home, dataset_id({"type": "digits", "options": {}})) == 5.0
