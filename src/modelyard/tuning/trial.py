"""One trial of a tune: its sampled values laid over the spec, trained by ``workflow.train``.

The trial's run is an ordinary run (its curves in the store, its checkpoints in its folder),
trained without registering: after each epoch the tuned metric goes to the Optuna trial
(``trial.report``), and when the pruner says stop, ``RunPruned`` raised from the epoch callback
ends the run as ``pruned``. The run's id, its epoch count and any error are trial attributes, so
``tune show`` and the console can link a trial to its run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelyard.errors import ModelyardError, RunPruned, SpecError
from modelyard.spec import Spec, apply_values, load_spec
from modelyard.tuning.space import Dimension, first_values

__all__ = ["trial_spec", "check_space", "run_trial", "final_value"]

log = logging.getLogger(__name__)


def trial_spec(base: Mapping[str, Any], params: Mapping[str, Any]) -> Spec:
    """The spec of one trial: ``base`` (a raw spec dict) with each searched path set to its value.

    Trials always checkpoint: the best trial is registered from its last checkpoint.
    """
    data = apply_values(dict(base), [*params.items(), ("train.checkpoint", True)])
    return load_spec(data)


def check_space(base: Mapping[str, Any], dims: Sequence[Dimension]) -> None:
    """Each searched path exists and takes its range's values, checked on the spec before any trial runs.

    Each dimension alone, at both ends of its range (or each of its choices), so the error names it.
    """
    for dim in dims:
        ends = list(dim.choices) if dim.kind == "choice" else [dim.low, dim.high]
        for value in ends:
            try:
                load_spec(apply_values(dict(base), [(dim.path, value)]))
            except SpecError as exc:
                raise SpecError(
                    f"Invalid value for `--search {dim.path}={dim.describe()}` (at {value!r}): {exc.message}",
                    field="--search",
                ) from None
    first_values(dims)  # every dimension has a value to start from


def final_value(spec: Spec, history: Sequence[Mapping[str, Any]], metric: str, best_epoch: int | None) -> float:
    """The metric of the weights the run ends with: early stopping's best epoch when it restores it, else the last."""
    early = spec.train.early_stopping
    epoch = best_epoch if early is not None and early.restore_best and best_epoch is not None else None
    row = next((r for r in history if r["epoch"] == epoch), history[-1])
    return float(row[metric])


def run_trial(
    trial: Any,
    base: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    metric: str,
    pruner: str,
    home: str | Path | None,
    progress: bool = False,
    console: Any = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    on_run_created: Callable[[str], None] | None = None,
) -> tuple[str, float | None]:
    """Train one trial and tell nothing yet; returns ("complete", value), ("pruned", None) or ("failed", None).

    A trial whose training fails (a learning rate that diverges) is a failed trial, not the end of
    the tune; Ctrl-C and bad input (a metric the run does not report) end the tune.
    """
    from modelyard import workflow

    spec = trial_spec(base, params)

    def created(run_id: str) -> None:
        trial.set_user_attr("run_id", run_id)
        if on_run_created is not None:
            on_run_created(run_id)

    def report(epoch: int, row: dict[str, Any]) -> None:
        if metric not in row:
            raise SpecError(
                f"Invalid value for `metric`: the run reports {', '.join(k for k in row if k != 'epoch')}, "
                f"received {metric!r}",
                field="metric",
            )
        if on_epoch_end is not None:  # the job's log and progress first: a pruned epoch is still an epoch
            on_epoch_end(epoch, row)
        value = float(row[metric])
        trial.set_user_attr("epochs", epoch)
        if not math.isfinite(value):
            return  # nothing to compare; a diverged loss fails the run itself
        trial.report(value, epoch)
        if trial.should_prune():
            raise RunPruned(f"pruned by the {pruner} pruner at epoch {epoch}: {metric} {value:.6g}")

    try:
        result = workflow.train(
            spec,
            home=home,
            progress=progress,
            console=console,
            on_epoch_end=report,
            on_run_created=created,
            register=False,
        )
    except RunPruned as exc:
        trial.set_user_attr("pruned", exc.message)
        return "pruned", None
    except SpecError:
        raise
    except ModelyardError as exc:  # e.g. TrainingError: the loss diverged at this learning rate
        log.warning("trial %d failed: %s", trial.number, exc.message)
        trial.set_user_attr("error", exc.message)
        return "failed", None
    value = final_value(spec, result.history, metric, result.best_epoch)
    return ("complete", value) if math.isfinite(value) else ("failed", None)
