"""What ``tune show``, ``GET /v1/tunes/{study}`` and the console say about a study.

Trials (number, state, value, epochs trained, run, parameters), the best value so far after
each trial (the optimisation history), the best trial and the registered model, and parameter
importances from Optuna's fANOVA evaluator (``optuna.importance``), seeded so they repeat.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["trial_rows", "history", "importances", "summary", "describe_study"]

_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def trial_rows(study: Any) -> list[dict[str, Any]]:
    replaced = set(study.user_attrs.get("replaced", []))
    rows = []
    for t in study.get_trials(deepcopy=False):
        state = "replaced" if t.number in replaced else _STATES.get(t.state.name, t.state.name.lower())
        rows.append(
            {
                "number": t.number,
                "state": state,
                "value": t.value,
                "epochs": t.user_attrs.get("epochs", len(t.intermediate_values)),
                "run_id": t.user_attrs.get("run_id"),
                "params": dict(t.params),
                "note": t.user_attrs.get("pruned") or t.user_attrs.get("error"),
            }
        )
    return rows


def history(study: Any) -> list[dict[str, Any]]:
    """Per finished trial in order: its value and the best value up to it (the optimisation-history plot)."""
    maximize = study.direction.name == "MAXIMIZE"
    best, points = None, []
    for row in trial_rows(study):
        if row["state"] != "complete" or row["value"] is None:
            continue
        value = float(row["value"])
        best = value if best is None else (max(best, value) if maximize else min(best, value))
        points.append({"trial": row["number"], "value": value, "best": best})
    return points


def importances(study: Any, seed: int = 0) -> dict[str, float]:
    """Each parameter's share of the variance of the metric (fANOVA); empty before two trials have completed."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2 or not complete[0].params:
        return {}
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError):  # every trial with one value of a parameter: nothing to attribute
        return {}
    return {name: float(v) for name, v in found.items()}


def summary(study: Any) -> Any:
    """The study as a ``TuneResult``."""
    import optuna

    from modelyard.tuning.api import TuneResult

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    best = study.best_trial if complete else None
    registered = study.user_attrs.get("best_model") or {}
    return TuneResult(
        study=study.study_name,
        best_trial=None if best is None else best.number,
        best_value=None if best is None else best.value,
        best_params={} if best is None else dict(best.params),
        model_ref=registered.get("model_ref") if best is not None and registered.get("trial") == best.number else None,
        trials=trial_rows(study),
    )


def describe_study(name: str, home: str | Path | None = None) -> dict[str, Any]:
    """Everything about one stored study, as JSON-able data."""
    from modelyard.tuning.study import load_study

    study = load_study(name, home)
    result = summary(study)
    attrs = study.user_attrs
    return {
        "study": result.study,
        "metric": attrs.get("metric"),
        "direction": attrs.get("direction"),
        "config": attrs.get("config", {}),
        "best": {
            "trial": result.best_trial,
            "value": result.best_value,
            "params": result.best_params,
            "model_ref": result.model_ref,
        },
        "trials": result.trials,
        "history": history(study),
        "importances": importances(study, seed=int(attrs.get("config", {}).get("seed", 0))),
        "epochs": result.epochs,
    }
