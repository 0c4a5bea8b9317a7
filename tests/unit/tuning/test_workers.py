"""Two processes working on one study never run the same trial twice and stop at its trial count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import modelyard
from modelyard.status import Status
from modelyard.store import RunStore
from modelyard.tuning.api import open_plan, prepare_tune
from tests.support.tuning import SEARCH, optuna_study, tiny_spec

WORKER = """
import json, sys
from modelyard.tuning.api import open_plan, prepare_tune, work_on
plan = prepare_tune(None, study="w", resume=True)
study = open_plan(plan, None, resume=True, worker=int(sys.argv[1]))
print(json.dumps(work_on(study, plan, home=None)))
"""


def test_two_workers_share_a_study_and_each_trial_runs_once(home: Path) -> None:
    plan = prepare_tune(tiny_spec(epochs=2), SEARCH, trials=8, metric="val_accuracy", pruner="none", study="w")
    open_plan(plan, home, resume=False)
    src = str(Path(modelyard.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(i)], env=env, stdout=subprocess.PIPE, text=True)
        for i in (1, 2)
    ]
    ran = [json.loads(w.communicate(timeout=300)[0].strip().splitlines()[-1]) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    trials = optuna_study(home, "w").trials
    assert sum(ran) == 8 and all(n > 0 for n in ran)  # both worked, and together ran exactly the study's trials
    assert [t.number for t in trials] == list(range(8)) and all(t.state.name == "COMPLETE" for t in trials)
    run_ids = [t.user_attrs["run_id"] for t in trials]
    assert len(set(run_ids)) == 8  # one run per trial: no trial was trained by both
    runs = RunStore().list()
    assert sorted(r.id for r in runs) == sorted(run_ids) and all(r.status == Status.SUCCEEDED for r in runs)
    params = [json.dumps(t.params, sort_keys=True) for t in trials]
    assert len(set(params)) == 8  # the workers' samplers do not draw the same values
