"""`modelyard tune SPEC --search ...`, `tune show`, `tune list`: the study's table and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.support.cli import run_cli
from tests.support.tuning import SEARCH, optuna_study, tiny_spec


def _spec(tmp_path: Path) -> str:
    path = tmp_path / "digits.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(epochs=3)))
    return str(path)


def test_tune_runs_the_trials_and_show_prints_what_optuna_stored(tmp_path: Path, home: Path) -> None:
    search = [a for item in SEARCH for a in ("--search", item)]
    ran = run_cli("tune", _spec(tmp_path), *search, "--trials", "3", "--metric", "val_accuracy", "--pruner", "none")
    assert ran.code == 0, ran.err
    best = optuna_study(home, "digits-tune").best_trial
    assert f"best trial {best.number}: {best.value:.4f}" in ran.out and "registered model digits-tune:1" in ran.out
    assert "A new study created" not in ran.err  # Optuna's INFO lines are the command's own output
    shown = run_cli("tune", "show", "digits-tune", "--json")
    found = json.loads(shown.out)
    assert found["best"] == {
        "trial": best.number,
        "value": best.value,
        "params": best.params,
        "model_ref": "digits-tune:1",
    }
    assert [t["run_id"] for t in found["trials"]] == [
        t.user_attrs["run_id"] for t in optuna_study(home, "digits-tune").trials
    ]
    assert set(found["importances"]) <= {"train.lr", "model.layers.0.units"}
    table = run_cli("tune", "show", "digits-tune").out
    assert "best so far" in table and found["trials"][0]["run_id"] in table
    assert "digits-tune" in run_cli("tune").out  # the noun alone lists the studies
    more = run_cli("tune", "--resume", "--study", "digits-tune", "--trials", "4")
    assert more.code == 0 and len(optuna_study(home, "digits-tune").trials) == 4


def test_bad_input_is_one_line_with_its_exit_code(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    cases = [
        (["--search", "model.layers.0.unitz=choice(8,16)"], "did you mean 'units'?"),
        (["--search", "train.lr=uniform(0.1,0.01)"], "received an empty range"),
        (["--search", SEARCH[0], "--metric", "val_f1"], "received 'val_f1'"),
    ]
    for args, words in cases:
        ran = run_cli("tune", spec, *args)
        assert ran.code == 2 and ran.err.startswith("error: ") and words in ran.err and ran.err.count("\n") == 1
    missing = run_cli("tune", "show", "nope")
    assert missing.code == 4 and missing.err == "error: No study named 'nope' in the store; there are no studies yet\n"
