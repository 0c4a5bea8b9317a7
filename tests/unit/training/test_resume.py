"""Exact resume: interrupted after epoch 2 and resumed equals 3 epochs uninterrupted."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from modelyard.errors import TrainingError
from modelyard.spec import TrainSpec
from modelyard.training import fit, load_checkpoint
from modelyard.training.checkpoint import LAST

TIMING = ("time_s", "samples_per_s")


class Interrupt(Exception):
    pass


def classifier() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.BatchNorm1d(16), nn.Linear(16, 3))
    net.output_activation, net.input_shape = "softmax", (4,)
    return net


def prepared():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (60,), generator=g)
    x = torch.randn(60, 4, generator=g) + nn.functional.one_hot(y, 4).float()

    def augmenter():  # random noise from the generator fit hands over
        return lambda batch, gen: batch + 0.1 * torch.randn(batch.shape, generator=gen)

    return SimpleNamespace(
        train=SimpleNamespace(x=x, y=y),
        val=SimpleNamespace(x=x[:20], y=y[:20]),
        test=None,
        num_classes=3,
        pipeline=SimpleNamespace(augmenter=augmenter),
    )


SPEC = TrainSpec.model_validate(
    {
        "loss": "cross_entropy",
        "optimizer": "adam",
        "lr": 0.01,
        "batch_size": 16,
        "epochs": 3,
        "precision": "fp32",
        "schedule": "cosine",
        "metrics": ["accuracy"],
        "l2": 0.001,
        "early_stopping": {"monitor": "val_accuracy", "patience": 10},
    }
)


def interrupt_after(epoch: int):
    def callback(e, metrics):
        if e == epoch:
            raise Interrupt

    return callback


def strip(history):
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def test_resume_ends_with_exactly_the_weights_of_an_uninterrupted_run(tmp_path: Path):
    straight = classifier()
    expected = fit(straight, prepared(), SPEC, seed=3, checkpoint_dir=tmp_path / "a", progress=False)

    resumed = classifier()
    with pytest.raises(Interrupt):
        fit(
            resumed,
            prepared(),
            SPEC,
            seed=3,
            checkpoint_dir=tmp_path / "b",
            on_epoch_end=interrupt_after(2),
            progress=False,
        )
    assert load_checkpoint(tmp_path / "b").epoch == 2
    # Torch's global generator moved on meanwhile: resume must not depend on it.
    torch.manual_seed(12345)
    fresh = classifier()
    seen = []
    result = fit(
        fresh,
        prepared(),
        SPEC,
        seed=3,
        checkpoint_dir=tmp_path / "b",
        resume=True,
        progress=False,
        on_epoch_end=lambda e, m: seen.append(e),
    )
    assert seen == [3]
    for (name, a), b in zip(straight.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name
    assert strip(result.history) == strip(expected.history)
    assert result.best_epoch == expected.best_epoch
    assert result.history[-1]["lr"] == expected.history[-1]["lr"]


def test_resume_without_checkpoint_starts_fresh_and_finished_runs_stay_finished(tmp_path: Path):
    first = fit(classifier(), prepared(), SPEC, seed=1, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert len(first.history) == 3
    again = classifier()
    seen = []
    second = fit(
        again,
        prepared(),
        SPEC,
        seed=1,
        checkpoint_dir=tmp_path,
        resume=True,
        progress=False,
        on_epoch_end=lambda e, m: seen.append(e),
    )
    assert seen == [] and strip(second.history) == strip(first.history)


def test_checkpoint_off_writes_nothing(tmp_path: Path):
    spec = SPEC.model_copy(update={"checkpoint": False})
    fit(classifier(), prepared(), spec, seed=1, checkpoint_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()


def test_resume_with_another_network_is_a_training_error(tmp_path: Path):
    fit(classifier(), prepared(), SPEC, seed=1, checkpoint_dir=tmp_path, progress=False)
    torch.manual_seed(0)
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    other.output_activation, other.input_shape = "softmax", (4,)
    with pytest.raises(TrainingError, match="Cannot resume: the checkpoint's network does not match"):
        fit(other, prepared(), SPEC, seed=1, checkpoint_dir=tmp_path, resume=True, progress=False)


def test_checkpoint_json_names_its_tensor_file(tmp_path: Path):
    fit(classifier(), prepared(), SPEC, seed=1, checkpoint_dir=tmp_path, progress=False)
    doc = json.loads((tmp_path / LAST).read_text())
    assert (tmp_path / doc["tensors"]).is_file() and doc["epoch"] == 3
    assert doc["early_stopping"]["best_epoch"] >= 1 and doc["has_best"] is True


def test_streaming_dataset_path_resumes_exactly(tmp_path: Path):
    from torch.utils.data import TensorDataset

    def streamed():
        data = prepared()
        data.train = TensorDataset(data.train.x, data.train.y)
        return data

    straight = classifier()
    fit(straight, streamed(), SPEC, seed=5, checkpoint_dir=tmp_path / "a", progress=False)
    resumed = classifier()
    with pytest.raises(Interrupt):
        fit(
            resumed,
            streamed(),
            SPEC,
            seed=5,
            checkpoint_dir=tmp_path / "b",
            on_epoch_end=interrupt_after(2),
            progress=False,
        )
    fresh = classifier()
    result = fit(fresh, streamed(), SPEC, seed=5, checkpoint_dir=tmp_path / "b", resume=True, progress=False)
    assert result.runtime["batching"] == "dataloader"
    for a, b in zip(straight.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
