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


def test_a_run_trained_without_registering_is_registered_later_with_the_weights_it_ended_with() -> None:
    import torch

    spec = {**SPEC, "train": {**SPEC["train"], "early_stopping": {"monitor": "val_accuracy", "patience": 2}}}
    trained = workflow.train(spec, progress=False, register=False)
    record = RunStore().get(trained.run_id)
    assert trained.model_ref is None and record.status == Status.SUCCEEDED and record.model_ref is None
    assert ModelStore().list() == []
    ref = workflow.register_run(trained.run_id, lineage={"tune": {"study": "s", "trial": 3}})
    assert ref == "wf:1" and RunStore().get(trained.run_id).model_ref == ref
    assert workflow.register_run(trained.run_id) == ref  # idempotent per run
    version = ModelStore().get(ref)
    assert version.lineage == {"tune": {"study": "s", "trial": 3}}
    # The reference: the network in memory at the end of the run (early stopping's best weights restored).
    import modelyard

    x = torch.randn(7, 64)
    with torch.no_grad():
        want = trained.network.eval()(x)
    got = modelyard.load(ref).network.eval()
    with torch.no_grad():
        torch.testing.assert_close(got(x), want)


def test_an_epoch_callback_raising_run_pruned_ends_the_run_pruned_not_failed() -> None:
    from modelyard.errors import RunPruned

    def prune_at_two(epoch: int, row: dict) -> None:
        if epoch == 2:
            raise RunPruned("pruned at epoch 2")

    with pytest.raises(RunPruned):
        workflow.train(SPEC, progress=False, register=False, on_epoch_end=prune_at_two)
    (run,) = RunStore().list()
    assert run.status == Status.PRUNED and run.error == "pruned at epoch 2"
    assert [h["epoch"] for h in run.history] == [1, 2] and ModelStore().list() == []
