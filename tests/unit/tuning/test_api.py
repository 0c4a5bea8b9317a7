"""modelyard.tune end to end: Optuna's own answer, the runs' recorded metrics, pruned runs, resume, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
import pytest

import modelyard
from modelyard.errors import NotFoundError, SpecError, StoreError
from modelyard.status import Status
from modelyard.store import ModelStore, RunStore
from tests.support.tuning import SEARCH, optuna_study, tiny_spec


def test_the_best_trial_is_optunas_and_is_registered_with_its_lineage(home: Path) -> None:
    result = modelyard.tune(tiny_spec(), SEARCH, trials=4, metric="val_accuracy", pruner="none", study="s")
    reference = optuna_study(home, "s")
    best = reference.best_trial
    assert (result.best_trial, result.best_value, result.best_params) == (best.number, best.value, best.params)
    assert [t["number"] for t in result.trials] == [0, 1, 2, 3] and reference.direction.name == "MAXIMIZE"
    # Each trial's value is the metric its run recorded at its last epoch (no early stopping).
    for trial in reference.trials:
        run = RunStore().get(trial.user_attrs["run_id"])
        assert run.status == Status.SUCCEEDED and len(run.history) == 4
        assert trial.value == pytest.approx(run.history[-1]["val_accuracy"])
        assert trial.intermediate_values == {h["epoch"]: pytest.approx(h["val_accuracy"]) for h in run.history}
    # Only the best trial is registered, from its run, with the study, trial and parameters.
    (version,) = ModelStore().list()
    assert result.model_ref == version.ref and version.run_id == best.user_attrs["run_id"]
    assert version.lineage["tune"] == {
        "study": "s",
        "trial": best.number,
        "params": best.params,
        "metric": "val_accuracy",
        "value": best.value,
    }
    spec = json.loads((version.path / "spec.json").read_text())
    assert spec["model"]["layers"][0]["options"]["units"] == best.params["model.layers.0.units"]
    assert spec["train"]["lr"] == best.params["train.lr"]


def test_pruned_trials_stop_early_and_their_runs_are_pruned(home: Path) -> None:
    result = modelyard.tune(tiny_spec(epochs=6), SEARCH, trials=8, metric="val_accuracy", pruner="asha", study="p")
    reference = optuna_study(home, "p")
    pruned = [t for t in reference.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "ASHA pruned no trial"
    for trial in pruned:
        run = RunStore().get(trial.user_attrs["run_id"])
        assert run.status == Status.PRUNED and "pruned by the asha pruner" in run.error
        assert [h["epoch"] for h in run.history] == sorted(trial.intermediate_values) and len(run.history) < 6
    assert result.epochs == sum(len(RunStore().get(t.user_attrs["run_id"]).history) for t in reference.trials)
    assert result.epochs < 8 * 6


def test_an_interrupted_tune_resumes_and_runs_the_interrupted_trial_again(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_epoch = RunStore.log_epoch
    calls = []

    def interrupt_second_trial(self: RunStore, run_id: str, epoch: int, metrics: dict) -> list[str]:
        calls.append(run_id)
        if len(set(calls)) == 2 and epoch == 2:
            raise KeyboardInterrupt
        return log_epoch(self, run_id, epoch, metrics)

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(RunStore, "log_epoch", interrupt_second_trial)
        modelyard.tune(tiny_spec(), SEARCH, trials=3, metric="val_accuracy", pruner="none", study="r")
    states = [t.state.name for t in optuna_study(home, "r").trials]
    assert states == ["COMPLETE", "FAIL"] and ModelStore().list() == []
    with pytest.raises(StoreError, match="exists already; continue it with --resume"):
        modelyard.tune(tiny_spec(), SEARCH, trials=3, metric="val_accuracy", study="r")
    result = modelyard.tune(None, study="r", resume=True)  # spec, search and options from the stored study
    reference = optuna_study(home, "r")
    assert [t.state.name for t in reference.trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert [t["state"] for t in result.trials] == ["complete", "replaced", "complete", "complete"]
    interrupted = RunStore().get(reference.trials[1].user_attrs["run_id"])
    assert interrupted.status == Status.INTERRUPTED
    first, *later = [t.params for t in reference.trials]
    assert all(p != first for p in later)  # the resumed sampler does not draw the first values again
    assert result.best_trial == reference.best_trial.number and result.model_ref is not None
    more = modelyard.tune(None, study="r", resume=True, trials=5)  # more trials for the same study
    assert len([t for t in more.trials if t["state"] != "replaced"]) == 5


@pytest.mark.parametrize(
    ("search", "metric", "message"),
    [
        (
            ["model.layers.0.unitz=choice(8,16)"],
            "val_accuracy",
            r"`--search model.layers.0.unitz=choice\(8,16\)` "
            r"\(at 8\): Invalid value for `model.layers\[0\]`: unknown field 'unitz'; did you mean 'units'\?",
        ),
        (["train.lrr=loguniform(1e-3,1e-2)"], "val_accuracy", r"unknown field 'lrr'; did you mean 'lr'\?"),
        (["model.layers.5.units=int(2,4)"], "val_accuracy", r"expected a list index below 2, received '5'"),
        (["train.lr=uniform(0.1,0.01)"], "val_accuracy", r"received an empty range"),
        (
            ["train.lr=uniform(0,0.1)"],
            "val_accuracy",
            r"\(at 0.0\): Invalid value for `train.lr`: expected a number > 0",
        ),
        (
            SEARCH,
            "val_f1",
            r"`metric`: expected a metric the runs of this spec report per epoch \(loss, accuracy, "
            r"val_loss, val_accuracy, lr, time_s, samples_per_s\), received 'val_f1'",
        ),
    ],
)
def test_bad_input_is_one_line_and_runs_nothing(search: list[str], metric: str, message: str) -> None:
    with pytest.raises(SpecError, match=message) as caught:
        modelyard.tune(tiny_spec(), search, trials=2, metric=metric, study="bad")
    assert "\n" not in caught.value.message
    assert RunStore().list() == [] and ModelStore().list() == []
    with pytest.raises(NotFoundError, match="No study named 'bad'"):
        modelyard.tune(None, study="bad", resume=True)


def test_a_val_metric_without_a_validation_split_says_how_to_get_one() -> None:
    spec = tiny_spec()
    spec["data"] = {**spec["data"], "validation": 0.0}
    with pytest.raises(SpecError, match="holds out no validation split: set data.validation"):
        modelyard.tune(spec, SEARCH, metric="val_accuracy")


def test_the_tune_section_of_a_spec_file_is_the_tune_and_train_ignores_it(tmp_path: Path, home: Path) -> None:
    import yaml

    spec = {
        **tiny_spec(epochs=2),
        "tune": {"search": {"train.lr": "loguniform(1e-3,1e-2)"}, "trials": 2, "pruner": "none"},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = modelyard.tune(path, metric="val_accuracy")
    assert result.study == "digits-tune" and len(result.trials) == 2
    assert set(optuna_study(home, "digits-tune").best_params) == {"train.lr"}
    assert modelyard.train(path, progress=False).model_ref == "digits-tune:2"
    with pytest.raises(SpecError, match=r"Invalid value for `tune.trials`: expected .*0"):
        modelyard.tune({**spec, "tune": {**spec["tune"], "trials": 0}})


def test_grid_search_runs_each_combination_once(home: Path) -> None:
    result = modelyard.tune(
        tiny_spec(epochs=2),
        ["model.layers.0.units=choice(8,16)", "train.batch_size=choice(64,128)"],
        sampler="grid",
        pruner="none",
        trials=10,
        metric="val_accuracy",
        study="g",
    )
    combos = sorted((t["params"]["model.layers.0.units"], t["params"]["train.batch_size"]) for t in result.trials)
    assert combos == [(8, 64), (8, 128), (16, 64), (16, 128)]


def test_without_optuna_a_tune_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "optuna", None)  # what an environment without the extra imports
    with pytest.raises(MissingDependencyError) as caught:
        modelyard.tune(tiny_spec(), SEARCH, trials=2)
    assert caught.value.message == (
        "modelyard tune needs the Python package optuna: install it with pip install 'modelyard[tune]'"
    )
    assert RunStore().list() == []
