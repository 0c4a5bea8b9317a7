"""``modelyard.tune``: search a spec's values with Optuna, each trial one run of ``workflow.train``.

    result = modelyard.tune("digits.yaml", ["train.lr=loguniform(1e-4,1e-1)"], trials=30,
                            metric="val_accuracy", pruner="asha")
    result.model_ref   # the best trial, registered with lineage {tune: {study, trial, params, ...}}

Everything is checked before the first trial (spec, search paths at both ends of their ranges,
the metric against what the runs report, sampler and pruner names). The study lives in the
store's database (``tuning/storage.py``); ``resume=True`` continues a study of the same name
(after Ctrl-C, a crash, or with more ``trials``), and several processes may work on one study at
once (``tuning/study.py`` hands out each trial once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelyard.errors import SpecError, UsageError, optional_dependency
from modelyard.spec import TUNE_SECTION, Spec, load_spec, read_spec_file
from modelyard.tuning import study as studies
from modelyard.tuning.config import TuneConfig, resolved, tune_config
from modelyard.tuning.space import parse_search, split_item, suggest
from modelyard.tuning.strategies import check_name, grid_trials, make_pruner, make_sampler
from modelyard.tuning.trial import check_space, run_trial

__all__ = ["tune", "TuneResult", "prepare_tune", "open_plan", "run_next", "work_on", "register_best", "Plan"]

log = logging.getLogger(__name__)


@dataclass
class TuneResult:
    """What a tune found: the study, its best trial and the version registered from it."""

    study: str
    best_trial: int | None
    best_value: float | None
    best_params: dict[str, Any]
    model_ref: str | None
    trials: list[dict[str, Any]]  # tuning.report.trial_rows: number, state, value, epochs, run_id, params

    @property
    def epochs(self) -> int:
        """Epochs trained over all trials (what pruning saves)."""
        return sum(int(t["epochs"] or 0) for t in self.trials)


@dataclass(frozen=True)
class Plan:
    """A checked tune: the raw spec of the trials, its configuration and the study's name."""

    spec: dict[str, Any]
    config: TuneConfig
    metric: str
    direction: str
    study: str


def _raw(spec: str | Path | Mapping[str, Any] | Spec) -> dict[str, Any]:
    if isinstance(spec, Spec):
        return spec.to_dict()
    if isinstance(spec, Mapping):
        return dict(spec)
    return read_spec_file(Path(spec))


def prepare_tune(
    spec: str | Path | Mapping[str, Any] | Spec | None,
    search: Iterable[str] | Mapping[str, Any] | None = None,
    *,
    home: str | Path | None = None,
    resume: bool = False,
    **options: Any,
) -> Plan:
    """Check a tune before anything runs; ``spec=None`` with ``resume`` takes the stored study's spec and options."""
    with optional_dependency("tune", "modelyard tune"):
        import optuna  # noqa: F401 - checked now, not after the spec has been read

    if spec is None:
        name = options.get("study")
        if not resume or not name:
            raise UsageError("missing SPEC (a YAML or JSON spec file), or --resume with --study NAME")
        stored = studies.load_study(name, home).user_attrs
        raw, section = dict(stored["spec"]), dict(stored["config"])
    else:
        raw = _raw(spec)
        section = raw.pop(TUNE_SECTION, None)
    config = tune_config(section, search=_search_arg(search), **options)
    base = load_spec(raw)  # the spec's own errors as themselves, before any search path is tried on it
    dims = parse_search(config.search)
    check_name("sampler", config.sampler)
    check_name("pruner", config.pruner)
    check_space(raw, dims)
    if check_name("sampler", config.sampler) == "grid":
        config = config.model_copy(update={"trials": min(config.trials, len(grid_trials(dims)))})
    metric, direction = resolved(config, base)
    return Plan(raw, config, metric, direction, config.study or base.name)


def _search_arg(search: Iterable[str] | Mapping[str, Any] | None) -> Any:
    if search is None or isinstance(search, Mapping):
        return search
    if not isinstance(search, (list, tuple)) or not all(isinstance(item, str) for item in search):
        raise SpecError(
            f"Invalid value for `search`: expected a list of PATH=DISTRIBUTION strings or a mapping of path to "
            f"distribution, received {search!r:.80}",
            field="search",
        )
    return dict(split_item(item) for item in search)


def open_plan(plan: Plan, home: str | Path | None, *, resume: bool, worker: int = 0) -> Any:
    """The plan's study: created (refused if it exists, unless resuming) or loaded to continue.

    The sampler's seed is the tune's seed plus the trials the study has already and the
    ``worker``'s number, so a resumed study or a second worker does not draw the first trials'
    values again (TPE's first trials are random draws).
    """
    dims = parse_search(plan.config.search)
    epochs = load_spec(plan.spec).train.epochs
    pruner = make_pruner(plan.config.pruner, epochs)
    if resume and plan.study in studies.study_names(home):
        done = len(studies.load_study(plan.study, home).get_trials(deepcopy=False))
        sampler = make_sampler(plan.config.sampler, dims, plan.config.seed + done + 7919 * worker)
        study = studies.load_study(plan.study, home, sampler=sampler, pruner=pruner)
        stored = study.user_attrs.get("config", {})
        if stored.get("search") != plan.config.model_dump()["search"] or study.user_attrs.get("metric") != plan.metric:
            raise SpecError(
                f"Invalid value for `--search`: study {plan.study!r} searched {stored.get('search')} for "
                f"{study.user_attrs.get('metric')}; resume it with the same search and metric, or start a new --study",
                field="--search",
            )
        if plan.config.trials != stored.get("trials"):
            study.set_user_attr("config", {**stored, "trials": plan.config.trials})
        studies.settle_stale_trials(study, home)
        return study
    attrs = {
        "spec": plan.spec,
        "config": plan.config.model_dump(),
        "metric": plan.metric,
        "direction": plan.direction,
    }
    sampler = make_sampler(plan.config.sampler, dims, plan.config.seed + 7919 * worker)
    study = studies.create_study(
        plan.study, home, direction=plan.direction, attrs=attrs, sampler=sampler, pruner=pruner
    )
    if check_name("sampler", plan.config.sampler) == "grid":
        for params in grid_trials(dims)[: plan.config.trials]:
            study.enqueue_trial(params)
    return study


def run_next(
    study: Any,
    plan: Plan,
    *,
    home: str | Path | None,
    progress: bool = False,
    console: Any = None,
    on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
    on_run_created: Callable[[str], None] | None = None,
) -> tuple[int, str, float | None] | None:
    """Claim and run the study's next trial; (number, state, value), or None once it has all its trials.

    Safe to call from several processes on one study at once (``tuning/study.py`` hands each trial out once).
    """
    import optuna

    trial = studies.claim_trial(study, home, plan.config.trials)
    if trial is None:
        return None
    params = suggest(trial, parse_search(plan.config.search))
    try:
        state, value = run_trial(
            trial,
            plan.spec,
            params,
            metric=plan.metric,
            pruner=plan.config.pruner,
            home=home,
            progress=progress,
            console=console,
            on_epoch_end=on_epoch_end,
            on_run_created=on_run_created,
        )
    except BaseException:  # Ctrl-C, a cancelled job, bad input: this trial did not happen, a resume runs it again
        studies.replace_trials(study, home, [trial.number])
        raise
    if state == "complete":
        study.tell(trial, value)
    else:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED if state == "pruned" else optuna.trial.TrialState.FAIL)
    return trial.number, state, value


def work_on(
    study: Any,
    plan: Plan,
    *,
    home: str | Path | None,
    progress: bool = False,
    console: Any = None,
    on_trial: Callable[[int, str, float | None], None] | None = None,
) -> int:
    """Run trials of ``study`` until it has ``plan.config.trials`` of them; returns how many this call ran."""
    ran = 0
    while (done := run_next(study, plan, home=home, progress=progress, console=console)) is not None:
        ran += 1
        if on_trial is not None:
            on_trial(*done)
    return ran


def register_best(study: Any, plan: Plan, home: str | Path | None) -> str | None:
    """Register the best trial's model with its lineage, once the study has all its trials finished.

    Whichever process finishes the study's last trial registers (a worker's earlier trial cannot
    register a best that a later trial beats); registration is idempotent per run.
    """
    import optuna

    from modelyard.workflow import register_run

    finished = [t for t in studies.counted(study) if t.state.is_finished()]
    if len(finished) < plan.config.trials:
        return None
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return None
    best = study.best_trial
    lineage = {
        "tune": {
            "study": study.study_name,
            "trial": best.number,
            "params": best.params,
            "metric": plan.metric,
            "value": best.value,
        }
    }
    ref = register_run(best.user_attrs["run_id"], home=home, lineage=lineage)
    study.set_user_attr("best_model", {"trial": best.number, "model_ref": ref})
    return ref


def tune(
    spec: str | Path | Mapping[str, Any] | Spec | None,
    search: Iterable[str] | Mapping[str, Any] | None = None,
    *,
    trials: int | None = None,
    metric: str | None = None,
    direction: str | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    seed: int | None = None,
    study: str | None = None,
    resume: bool = False,
    home: str | Path | None = None,
    progress: bool = False,
    console: Any = None,
    on_trial: Callable[[int, str, float | None], None] | None = None,
) -> TuneResult:
    """Search ``spec``'s values and register the best trial; see the module docstring.

    ``search``: ``PATH=DISTRIBUTION`` strings or a ``{path: distribution}`` mapping (the spec's
    ``tune.search``). Options left None come from the spec's ``tune:`` section, else the defaults
    (``trials`` 20, ``metric`` the early-stopping monitor or ``val_loss``, ``sampler`` tpe,
    ``pruner`` median, ``seed`` 0, ``study`` the spec's name).
    """
    from modelyard.tuning.report import summary

    plan = prepare_tune(
        spec,
        search,
        home=home,
        resume=resume,
        trials=trials,
        metric=metric,
        direction=direction,
        sampler=sampler,
        pruner=pruner,
        seed=seed,
        study=study,
    )
    found = open_plan(plan, home, resume=resume)
    work_on(found, plan, home=home, progress=progress, console=console, on_trial=on_trial)
    register_best(found, plan, home)
    return summary(found)
