"""Checkpoints: exact round trip without pickle, atomic replacement, clear errors."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from torch import nn

from modelyard.errors import TrainingError
from modelyard.training import Checkpoint, load_checkpoint, save_checkpoint
from modelyard.training.checkpoint import LAST


def trained_state(epoch: int = 2) -> Checkpoint:
    torch.manual_seed(epoch)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99), fused=True)
    for _ in range(epoch):
        nn.functional.mse_loss(model(torch.randn(8, 3)), torch.randn(8, 2)).backward()
        opt.step()
        opt.zero_grad()
    return Checkpoint(
        epoch=epoch,
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        history=[{"epoch": e, "loss": 1.0 / e, "confusion_matrix": [[1, 0], [0, 1]]} for e in range(1, epoch + 1)],
        schedule={"last_epoch": 3, "best": math.inf},
        rng={"torch_cpu": torch.get_rng_state(), "shuffle": torch.Generator().manual_seed(1).get_state()},
        early_stopping={"best": -math.inf, "best_epoch": None, "wait": 1, "should_stop": False},
        best_weights={k: v.clone() + 1 for k, v in model.state_dict().items()},
        extra={"seed": 7},
    )


def assert_same(a: Checkpoint, b: Checkpoint) -> None:
    assert a.epoch == b.epoch and a.history == b.history and a.extra == b.extra
    assert a.schedule == b.schedule and a.early_stopping == b.early_stopping
    for mine, theirs in ((a.model, b.model), (a.rng, b.rng), (a.best_weights, b.best_weights)):
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) and mine[k].dtype == theirs[k].dtype for k in mine)
    assert a.optimizer["param_groups"] == b.optimizer["param_groups"]
    assert a.optimizer["state"].keys() == b.optimizer["state"].keys()
    for pid, entries in a.optimizer["state"].items():
        assert entries.keys() == b.optimizer["state"][pid].keys()
        assert all(torch.equal(v, b.optimizer["state"][pid][k]) for k, v in entries.items())


def test_round_trip_is_exact(tmp_path: Path):
    state = trained_state()
    save_checkpoint(tmp_path, state)
    assert_same(load_checkpoint(tmp_path), state)
    # No pickle: one safetensors file and one standard-JSON file.
    names = sorted(p.suffix for p in tmp_path.iterdir())
    assert names == [".json", ".safetensors"]
    doc = json.loads((tmp_path / LAST).read_text(), parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    assert doc["tensors"].endswith(".safetensors") and doc["epoch"] == 2


def test_loaded_optimizer_state_continues_identically(tmp_path: Path):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1, fused=True)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, Checkpoint(epoch=1, model=model.state_dict(), optimizer=opt.state_dict()))
    ckpt = load_checkpoint(tmp_path)
    clone = nn.Linear(3, 1)
    clone.load_state_dict(ckpt.model)
    clone_opt = torch.optim.Adam(clone.parameters(), lr=0.5, fused=True)
    clone_opt.load_state_dict(ckpt.optimizer)
    x = torch.randn(4, 3)
    for m, o in ((model, opt), (clone, clone_opt)):
        o.zero_grad()
        m(x).sum().backward()
        o.step()
    assert torch.equal(model.weight, clone.weight) and clone_opt.param_groups[0]["lr"] == 0.1


def test_newer_checkpoint_replaces_older_and_leftovers_are_ignored(tmp_path: Path):
    save_checkpoint(tmp_path, trained_state(1))
    # A crash mid-write leaves temp files behind: they must never be mistaken for a checkpoint.
    (tmp_path / f".{LAST}.abc123.tmp").write_text("{half a json")
    (tmp_path / ".ckpt-000002-ffffffffffff.safetensors.x.tmp").write_bytes(b"\x00" * 10)
    assert load_checkpoint(tmp_path).epoch == 1
    save_checkpoint(tmp_path, trained_state(2))
    assert load_checkpoint(tmp_path).epoch == 2
    assert len(list(tmp_path.glob("*.safetensors"))) == 1 and not list(tmp_path.glob(".*.tmp"))


def test_crash_before_commit_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    first = trained_state(1)
    save_checkpoint(tmp_path, first)
    real_replace = os.replace

    def crash_on_commit(src, dst):
        if Path(dst).name == LAST:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_commit)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, trained_state(2))
    monkeypatch.undo()
    assert_same(load_checkpoint(tmp_path), first)
    assert not list(tmp_path.glob(".*.tmp"))  # the temp file of the failed write is gone


def test_no_checkpoint_is_none_and_damage_is_a_training_error(tmp_path: Path):
    assert load_checkpoint(tmp_path) is None
    assert load_checkpoint(tmp_path / "missing") is None
    save_checkpoint(tmp_path, trained_state(1))
    tensors = next(tmp_path.glob("*.safetensors"))
    tensors.write_bytes(b"garbage")
    with pytest.raises(TrainingError, match="unusable.*cannot read it"):
        load_checkpoint(tmp_path)
    tensors.unlink()
    with pytest.raises(TrainingError, match="tensor file .* is missing"):
        load_checkpoint(tmp_path)
    (tmp_path / LAST).write_text("not json")
    with pytest.raises(TrainingError, match="delete the folder to start over"):
        load_checkpoint(tmp_path)


def test_tensor_file_of_another_checkpoint_is_refused(tmp_path: Path):
    save_checkpoint(tmp_path / "a", trained_state(1))
    save_checkpoint(tmp_path / "b", trained_state(1))
    doc_a = json.loads((tmp_path / "a" / LAST).read_text())
    doc_b = json.loads((tmp_path / "b" / LAST).read_text())
    (tmp_path / "b" / doc_b["tensors"]).rename(tmp_path / "a" / doc_a["tensors"])
    with pytest.raises(TrainingError, match="belongs to another checkpoint"):
        load_checkpoint(tmp_path / "a")
