"""POST /v1/tunes: a study and one job per trial; workers run the study's trials; GET shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from modelyard.server import ServerConfig, create_server_app
from modelyard.server.jobs.store import JobStore
from modelyard.server.jobs.worker import Worker
from modelyard.status import Status
from modelyard.store import ModelStore, RunStore
from tests.support.tuning import SEARCH, optuna_study, tiny_spec

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api(home: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_server_app(ServerConfig(port=8080, home=home), start_workers=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as client:
            yield client


async def test_a_tune_queues_one_job_per_trial_and_workers_run_the_studys_trials(
    api: httpx.AsyncClient, home: Path
) -> None:
    body = {"spec": tiny_spec(epochs=2), "search": SEARCH, "trials": 3, "metric": "val_accuracy", "pruner": "none"}
    started = await api.post("/v1/tunes", json=body)
    assert started.status_code == 201, started.text
    answer = started.json()
    assert answer["study"] == "digits-tune" and len(answer["jobs"]) == 3
    worker = Worker(home, lease_s=30, heartbeat_s=1)
    for _ in range(3):  # one worker here; the study hands each job its own trial (test_workers: two processes)
        job = worker.leases.claim(worker.worker_id)
        worker.run_job(job)
    jobs = [JobStore(home).get(j) for j in answer["jobs"]]
    assert all(j.status == Status.SUCCEEDED for j in jobs)
    study = optuna_study(home, "digits-tune")
    assert sorted(j.run_id for j in jobs) == sorted(t.user_attrs["run_id"] for t in study.trials)
    assert all(RunStore().get(j.run_id).status == Status.SUCCEEDED for j in jobs)
    # The last job out registered the best trial; its model is the job's answer.
    (version,) = ModelStore().list()
    assert jobs[-1].model_ref == version.ref and version.run_id == study.best_trial.user_attrs["run_id"]
    shown = (await api.get("/v1/tunes/digits-tune")).json()
    assert shown["best"]["trial"] == study.best_trial.number and shown["best"]["model_ref"] == version.ref
    assert (await api.get("/v1/tunes")).json() == {"studies": ["digits-tune"]}


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"search": ["model.layers.0.unitz=choice(8,16)"]}, 422, "did you mean 'units'?"),
        ({"search": ["train.lr=uniform(0.1,0.01)"]}, 422, "received an empty range"),
        ({"metric": "val_f1"}, 422, "received 'val_f1'"),
        ({"spec": "x"}, 422, "Invalid value for `spec`"),
    ],
)
async def test_bad_tunes_are_refused_naming_the_field_and_queue_nothing(
    api: httpx.AsyncClient, home: Path, change: dict, status: int, words: str
) -> None:
    body = {"spec": tiny_spec(epochs=2), "search": SEARCH, "trials": 2, "metric": "val_accuracy", **change}
    answer = await api.post("/v1/tunes", json=body)
    assert answer.status_code == status and words in answer.json()["message"]
    assert JobStore(home).list() == [] and (await api.get("/v1/tunes")).json() == {"studies": []}
    assert (await api.get("/v1/tunes/digits-tune")).status_code == 404
