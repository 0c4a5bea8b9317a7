"""A tune on the control plane: ``POST /v1/tunes`` queues one job per trial, any worker runs it.

The route checks the tune and creates the study (``submit_tune``); each job's spec carries
``tune: {study: NAME}``, and the worker that claims it runs the study's next trial as an
ordinary run (``run_trial_job``), so as many trials train at once as there are free workers, and
the study, not the job, says which values a trial gets. A job is one attempt: a trial whose
worker is lost is failed and replaced by the study (``settle_stale_trials``), not retried.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from modelyard.spec import TUNE_SECTION

__all__ = ["submit_tune", "run_trial_job", "is_trial_job"]


def submit_tune(
    body: Mapping[str, Any],
    *,
    home: Path,
    submit: Callable[[dict[str, Any]], Any],
    check_spec: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Check a tune request, create its study, queue its trials; the study's name and the jobs.

    ``body``: ``{"spec": {... with an optional tune: section}, "search": {...} or [...], "trials", ...}``.
    ``check_spec`` is the jobs route's pre-flight check (data access included), ``submit`` queues one job.
    """
    from modelyard.errors import SpecError
    from modelyard.registry import closest
    from modelyard.tuning.api import open_plan, prepare_tune
    from modelyard.tuning.config import TuneConfig

    spec = body.get("spec")
    if not isinstance(spec, dict):
        raise SpecError(
            f"Invalid value for `spec`: expected a mapping with name, data, model and train, received "
            f"{type(spec).__name__}",
            field="spec",
        )
    options = {k: v for k, v in body.items() if k not in ("spec", "search")}
    known = sorted(set(TuneConfig.model_fields) | {"spec"})
    for key in options:
        if key not in known:
            near = closest(str(key), known)
            hint = f"; did you mean {near!r}?" if near else ""
            raise SpecError(
                f"Unknown field {key!r} of the tune body{hint} (expected one of: {', '.join(known)})", field=str(key)
            )
    raw = {k: v for k, v in spec.items() if k != TUNE_SECTION}
    check_spec(raw)
    plan = prepare_tune(spec, body.get("search"), home=home, **options)
    open_plan(plan, home, resume=False)
    resolved = check_spec(raw)
    jobs = [submit({**resolved, TUNE_SECTION: {"study": plan.study}}) for _ in range(plan.config.trials)]
    return {"study": plan.study, "trials": plan.config.trials, "metric": plan.metric, "jobs": jobs}


def is_trial_job(spec: Mapping[str, Any]) -> bool:
    section = spec.get(TUNE_SECTION)
    return isinstance(section, Mapping) and isinstance(section.get("study"), str)


def run_trial_job(
    spec: Mapping[str, Any],
    *,
    home: str | Path | None,
    worker: int,
    on_epoch_end: Callable[[int, dict[str, Any]], None],
    on_run_created: Callable[[str], None],
) -> str | None:
    """Run the next trial of the job's study; the registered model's ref when it was the study's last."""
    from modelyard.tuning.api import open_plan, prepare_tune, register_best, run_next

    name = spec[TUNE_SECTION]["study"]
    plan = prepare_tune(None, home=home, resume=True, study=name)
    study = open_plan(plan, home, resume=True, worker=worker)
    run_next(study, plan, home=home, on_epoch_end=on_epoch_end, on_run_created=on_run_created)
    return register_best(study, plan, home)
