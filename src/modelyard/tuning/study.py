"""A tune's Optuna study in the store: created with its configuration, found again to resume.

The study keeps what it was started with as user attributes (``spec``: the raw spec without its
``tune:`` section, ``config``: the TuneConfig), so ``modelyard tune --resume NAME`` continues
with nothing else given, and a resumed or parallel worker searches the same space. Trials are
handed out under a lock file per study, so however many processes work on one study, it never
gets more than ``trials`` counted trials.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from modelyard.errors import NotFoundError, StoreError
from modelyard.registry import closest
from modelyard.store import paths
from modelyard.tuning.storage import study_storage

__all__ = [
    "create_study",
    "load_study",
    "study_names",
    "claim_trial",
    "settle_stale_trials",
    "replace_trials",
    "counted",
]

log = logging.getLogger(__name__)

# A trial without a run this long after it started belongs to a process that died before training.
_NO_RUN_AFTER_S = 600.0
_REPLACED = "replaced"  # study attribute: numbers of failed trials that do not count (their process died)


def study_names(home: str | Path | None) -> list[str]:
    import optuna

    return [s.study_name for s in optuna.get_all_study_summaries(study_storage(home), include_best_trial=False)]


def load_study(name: str, home: str | Path | None, *, sampler: Any = None, pruner: Any = None) -> Any:
    import optuna

    names = study_names(home)
    if name not in names:
        near = closest(name, names)
        hint = f"; did you mean {near!r}?" if near else ("" if names else "; there are no studies yet")
        raise NotFoundError(f"No study named {name!r} in the store{hint}", field="study")
    return optuna.load_study(study_name=name, storage=study_storage(home), sampler=sampler, pruner=pruner)


def create_study(
    name: str, home: str | Path | None, *, direction: str, attrs: Mapping[str, Any], sampler: Any, pruner: Any
) -> Any:
    import optuna

    names = study_names(home)
    if name in names:
        raise StoreError(
            f"A study named {name!r} exists already; continue it with --resume, or name a new one with --study",
            field="study",
        )
    study = optuna.create_study(
        study_name=name,
        storage=study_storage(home),
        direction="maximize" if direction == "max" else "minimize",
        sampler=sampler,
        pruner=pruner,
    )
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    return study


def counted(study: Any) -> list[Any]:
    """The trials that count towards ``trials``: those handed out (not enqueued ones still waiting), except
    those replaced after their process died."""
    import optuna

    replaced = set(study.user_attrs.get(_REPLACED, []))
    waiting = optuna.trial.TrialState.WAITING
    return [t for t in study.get_trials(deepcopy=False) if t.number not in replaced and t.state != waiting]


@contextmanager
def _locked(study: Any, home: str | Path | None) -> Iterator[None]:
    folder = paths.ensure_dir(paths.home(home) / "tunes")
    with open(folder / f"{study.study_name}.lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the file closes
        yield


def claim_trial(study: Any, home: str | Path | None, trials: int) -> Any | None:
    """A new trial of ``study``, or None once it has ``trials`` counted trials (finished or running)."""
    with _locked(study, home):
        if len(counted(study)) >= trials:
            return None
        return study.ask()


def settle_stale_trials(study: Any, home: str | Path | None) -> list[int]:
    """Fail the running trials whose process is gone (their run settled as failed), so they are run again.

    A trial whose run still has a live heartbeat is another worker's and is left alone.
    """
    import optuna

    from modelyard.store import RunStore

    runs, settled = RunStore(home), []
    now = datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        run_id = trial.user_attrs.get("run_id")
        if run_id is None:
            if trial.datetime_start is None or now - trial.datetime_start < timedelta(seconds=_NO_RUN_AFTER_S):
                continue
        else:
            try:
                if runs.settle_stale(run_id).status == "running":
                    continue
            except StoreError:  # still running elsewhere
                continue
        settled.append(trial.number)
    if settled:
        replace_trials(study, home, settled)
        log.info("study %s: trials %s lost their process; they are run again", study.study_name, settled)
    return settled


def replace_trials(study: Any, home: str | Path | None, numbers: list[int]) -> None:
    """End trials that did not finish (interrupted, or their process died) as failed ones that do not count."""
    import optuna

    with _locked(study, home):
        study.set_user_attr(_REPLACED, sorted({*study.user_attrs.get(_REPLACED, []), *numbers}))
        for number in numbers:
            study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
