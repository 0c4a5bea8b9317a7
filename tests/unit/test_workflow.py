"""workflow: what `train` / `resume` keep true when a run is stopped from outside."""

from __future__ import annotations

import pytest

from modelyard import workflow
from modelyard.status import Status
from modelyard.store import ModelStore, RunStore
from tests.support.console import DIGITS

SPEC = {**DIGITS, "name": "wf", "train": {**DIGITS["train"], "epochs": 4, "checkpoint": True}}


def test_a_stop_between_checkpoint_and_metrics_leaves_no_hole_after_resume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # fit saves an epoch's checkpoint before it reports the epoch: stopped in between (SIGTERM,
    # SIGKILL), the checkpoint holds epoch 2 and the store does not; resume starts at epoch 3.
    log_epoch = RunStore.log_epoch

    def stop_at_two(self: RunStore, run_id: str, epoch: int, metrics: dict) -> list[str]:
        if epoch == 2:
            raise KeyboardInterrupt
        return log_epoch(self, run_id, epoch, metrics)

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(RunStore, "log_epoch", stop_at_two)
        workflow.train(SPEC, progress=False)
    (run,) = RunStore().list()
    assert run.status == Status.INTERRUPTED and [h["epoch"] for h in run.history] == [1]
    done = workflow.resume(run.id, progress=False)
    assert [h["epoch"] for h in RunStore().get(run.id).history] == [1, 2, 3, 4]
    assert [h["epoch"] for h in done.history] == [1, 2, 3, 4] and [v.ref for v in ModelStore().list()] == ["wf:1"]
