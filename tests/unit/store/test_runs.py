"""RunStore: lifecycle, metric history, id prefixes, stale-run reaping and listing."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import torch

from modelyard.errors import InputError, NotFoundError, SpecError, StoreError
from modelyard.status import Status
from modelyard.store import RunStore
from modelyard.store import db as store_db
from modelyard.store import owner as owner_module
from modelyard.store import runs as runs_module
from modelyard.store.heartbeat import Heartbeat

SPEC = {"name": "fashion-mlp", "seed": 3, "train": {"loss": {"type": "cross_entropy", "options": {}}, "epochs": 2}}


@pytest.fixture(autouse=True)
def _close_engines() -> Iterator[None]:
    yield
    store_db.close_all()


@pytest.fixture
def store() -> RunStore:
    return RunStore()


def test_lifecycle_round_trip(store: RunStore, home: Path) -> None:
    env = {"seed": 3, "device": "cpu", "packages": {"torch": torch.__version__}}
    run = store.create(SPEC, env)
    assert run.status == "queued" and run.name == "fashion-mlp" and run.started_at is None
    assert run.id.startswith("r-") and run.path == home / "artifacts" / "runs" / run.id

    started = store.start(run.id)
    assert started.status == "running" and started.started_at is not None
    # Epochs logged out of order come back ordered; non-numbers are skipped and reported.
    skipped = store.log_epoch(run.id, 2, {"loss": 0.25, "val_loss": np.float32(0.5), "cm": [[1, 0], [0, 1]]})
    assert skipped == ["cm"]
    store.log_epoch(run.id, 1, {"loss": 0.75, "val_loss": torch.tensor(1.5), "accuracy": 1})
    done = store.finish(run.id, {"test": {"accuracy": 0.9, "confusion": [[3, 1], [0, 4]]}}, "fashion-mlp:1")

    got = store.get(run.id)
    assert got == done
    assert got.status == "succeeded" and got.model_ref == "fashion-mlp:1" and got.error is None
    assert got.history == [
        {"epoch": 1, "loss": 0.75, "val_loss": 1.5, "accuracy": 1.0},
        {"epoch": 2, "loss": 0.25, "val_loss": 0.5},
    ]
    assert got.spec == SPEC
    assert got.env == env
    assert got.summary == {"test": {"accuracy": 0.9, "confusion": [[3, 1], [0, 4]]}}
    assert got.started_at is not None and got.finished_at is not None
    assert got.created_at <= got.started_at <= got.finished_at
    assert got.created_at.tzinfo is not None
    assert got.duration_s is not None and got.duration_s >= 0


def test_log_epoch_again_replaces_and_keeps_nan(store: RunStore) -> None:
    run = store.start(store.create(SPEC).id)
    store.log_epoch(run.id, 1, {"loss": 1.0, "accuracy": 0.5})
    store.log_epoch(run.id, 1, {"loss": float("nan")})  # a resumed run repeats epoch 1
    (row,) = store.get(run.id).history
    assert math.isnan(row["loss"]) and row["accuracy"] == 0.5
    assert store.get(run.id).to_dict()["history"] == [{"epoch": 1, "loss": None, "accuracy": 0.5}]


def test_log_epoch_rejects_bad_epoch(store: RunStore) -> None:
    run = store.create(SPEC)
    with pytest.raises(InputError, match="`epoch`: expected an integer >= 0, received -1"):
        store.log_epoch(run.id, -1, {"loss": 1.0})


def test_create_needs_a_name(store: RunStore) -> None:
    with pytest.raises(SpecError, match="`name`"):
        store.create({"train": {}})


def test_unknown_id_hints_the_closest(store: RunStore) -> None:
    run = store.create(SPEC)
    typo = run.id[:-1] + ("0" if run.id[-1] != "0" else "1")
    with pytest.raises(NotFoundError, match=f"did you mean '{run.id}'") as err:
        store.get(typo + "9")
    assert err.value.field == "run_id"
    with pytest.raises(InputError, match="expected letters, digits and '-'"):
        store.get("r 1; drop table runs")


def test_id_prefixes(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = iter(["r-20261122-abc123", "r-20261122-abd456", "r-20261123-ffff00"])
    monkeypatch.setattr(runs_module, "_new_id", lambda now: next(ids))
    a, b, c = (store.create(SPEC).id for _ in range(3))
    assert store.get("r-20261122-abc").id == a  # prefix of the whole id
    assert store.get("abd").id == b  # prefix of the random part
    assert store.get("R-20261123").id == c  # case-insensitive
    assert store.get("ffff00").id == c
    with pytest.raises(InputError, match="Ambiguous run id 'ab': matches r-20261122-ab"):
        store.get("ab")
    with pytest.raises(NotFoundError):
        store.get("abc124")


def test_transitions_are_checked(store: RunStore) -> None:
    run = store.create(SPEC)
    with pytest.raises(StoreError, match=f"Run {run.id} is queued; this needs a run that is running"):
        store.finish(run.id, {})
    with pytest.raises(StoreError, match="is queued"):
        store.heartbeat(run.id)
    store.start(run.id)
    store.heartbeat(run.id)
    with pytest.raises(
        StoreError, match=r"is running \(last heartbeat \d+s ago\); this needs a run that is queued or failed"
    ):
        store.start(run.id)  # a second process must not take over a live run
    failed = store.fail(run.id, RuntimeError("loss became NaN\n  at epoch 3" + "x" * 1000))
    assert failed.status == "failed" and "\n" not in (failed.error or "")
    assert failed.error is not None and failed.error.startswith("RuntimeError: loss became NaN at epoch 3")
    assert len(failed.error) == 500
    with pytest.raises(StoreError, match="is failed"):
        store.heartbeat(run.id)
    resumed = store.start(run.id)  # a failed run may be resumed
    assert resumed.status == "running" and resumed.error is None and resumed.finished_at is None
    assert store.cancel(run.id).status == "cancelled"


def test_reap_stale_marks_only_old_running_runs(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    t0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    clock = {"now": t0}
    monkeypatch.setattr(runs_module, "_now", lambda: clock["now"])
    old = store.start(store.create(SPEC).id)
    done = store.start(store.create(SPEC).id)
    store.finish(done.id, {})
    queued = store.create(SPEC)
    clock["now"] = t0 + timedelta(seconds=100)
    fresh = store.start(store.create(SPEC).id)
    store.log_epoch(old.id, 1, {"loss": 1.0})  # logging is a heartbeat too...
    clock["now"] = t0 + timedelta(seconds=130)
    store.heartbeat(fresh.id)
    clock["now"] = t0 + timedelta(seconds=200)  # ...at 100 s: 100 s ago now; fresh at 70 s ago

    assert store.reap_stale(90) == [old.id]
    reaped = store.get(old.id)
    assert reaped.status == "failed" and reaped.error == "no heartbeat for 100s (process died?)"
    assert reaped.finished_at == clock["now"]
    assert store.get(fresh.id).status == "running"
    assert store.get(done.id).status == "succeeded"
    assert store.get(queued.id).status == "queued"
    assert store.reap_stale(90) == []


def test_list_filters_newest_first(store: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    t0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    tick = iter(range(100))
    monkeypatch.setattr(runs_module, "_now", lambda: t0 + timedelta(seconds=next(tick)))
    first = store.create(SPEC)
    second = store.create({**SPEC, "name": "other"})
    third = store.start(store.create(SPEC).id)
    store.log_epoch(third.id, 1, {"loss": 2.0})
    assert [r.id for r in store.list()] == [third.id, second.id, first.id]
    assert [r.id for r in store.list(name="fashion-mlp")] == [third.id, first.id]
    assert [r.id for r in store.list(status="running")] == [third.id]
    assert [r.id for r in store.list(limit=1)] == [third.id]
    assert store.list()[0].history == [{"epoch": 1, "loss": 2.0}]  # lists carry history too
    with pytest.raises(
        InputError, match="expected one of queued, running, .*received 'runing'; did you mean 'running'"
    ):
        store.list(status="runing")
    with pytest.raises(InputError, match="received 'completed'; 'completed' is now called 'succeeded'"):
        store.list(status="completed")
    with pytest.raises(InputError, match="`limit`"):
        store.list(limit=0)


def test_run_dir_is_created_under_home(store: RunStore, home: Path) -> None:
    run = store.create(SPEC)
    assert not (home / "artifacts").exists()
    folder = store.run_dir(run.id[-6:])  # prefixes work here too
    assert folder == home / "artifacts" / "runs" / run.id and folder.is_dir()
    assert store.checkpoint_dir(run.id) == folder / "checkpoints" and (folder / "checkpoints").is_dir()
    with pytest.raises(NotFoundError):
        store.run_dir("r-19990101-000000")


def test_summary_must_be_json(store: RunStore) -> None:
    run = store.start(store.create(SPEC).id)
    with pytest.raises(StoreError, match=r"Cannot store `summary.model`: expected JSON-compatible data"):
        store.finish(run.id, {"model": object()})
    assert store.get(run.id).status == "running"  # nothing changed


def _owned_by(store: RunStore, run_id: str, pid: int, host: str) -> None:
    (store.run_dir(run_id) / owner_module.OWNER_FILE).write_text(
        json.dumps({"pid": pid, "host": host, "start_ticks": None})
    )


def test_settle_stale_takes_over_only_a_run_whose_process_is_gone(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    clock = {"now": t0}
    monkeypatch.setattr(runs_module, "_now", lambda: clock["now"])
    elsewhere = store.start(store.create(SPEC).id)
    _owned_by(store, elsewhere.id, 1, "another-machine")
    here = store.start(store.create(SPEC).id)
    owner_module.record_owner(store.run_dir(here.id))  # this very process: alive
    clock["now"] = t0 + timedelta(seconds=runs_module.STALE_AFTER_S - 1)
    for run in (elsewhere, here):
        with pytest.raises(
            StoreError, match=rf"Run {run.id} is still running by process \d+ on .*`modelyard runs cancel"
        ):
            store.settle_stale(run.id)
    clock["now"] = t0 + timedelta(seconds=runs_module.STALE_AFTER_S)  # the heartbeat is stale now
    settled = store.settle_stale(elsewhere.id)
    assert settled.status == "failed" and settled.error == "no heartbeat for 60s (process died?)"
    assert store.get(here.id).status == "running"  # only the run asked about is reaped

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = store.start(store.create(SPEC).id)
    _owned_by(store, gone.id, int(dead.stdout), socket.gethostname())
    settled = store.settle_stale(gone.id)  # a fresh heartbeat, but its process is gone from this machine
    assert settled.status == "failed" and f"its process {int(dead.stdout)} on" in (settled.error or "")
    assert store.start(gone.id).status == "running"


def test_interrupt_and_cancel(store: RunStore) -> None:
    run = store.start(store.create(SPEC).id)
    stopped = store.interrupt(run.id, "interrupted (resume with ...)")
    assert stopped.status == Status.INTERRUPTED and stopped.finished_at is not None
    with pytest.raises(StoreError, match="is interrupted; this needs a run that is running"):
        store.interrupt(run.id, "again")
    assert store.start(run.id).status == Status.RUNNING  # resumable
    store.interrupt(run.id, "interrupted")
    assert store.cancel(run.id).status == Status.CANCELLED  # never to be resumed by a job


def test_heartbeat_thread_beats_and_stops_training_once_cancelled(store: RunStore) -> None:
    run = store.start(store.create(SPEC).id)
    before = store.get(run.id).heartbeat_at
    with Heartbeat(store, run.id, interval_s=0.02):
        time.sleep(0.3)
    assert store.get(run.id).heartbeat_at > before
    with pytest.raises(KeyboardInterrupt):  # what `runs cancel` from another machine leads to
        with Heartbeat(store, run.id, interval_s=0.02):
            store.cancel(run.id)
            time.sleep(5)
    assert store.get(run.id).status == Status.CANCELLED
