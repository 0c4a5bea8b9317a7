"""`data.stream: true`: memory-mapped .npy data read batch by batch, against the same data in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from modelyard import workflow
from modelyard.data import prepare
from modelyard.data import streamed as streamed_module
from modelyard.data.streamed import StreamedSplit
from modelyard.errors import DataError, SpecError
from modelyard.spec import load_spec


@pytest.fixture
def npy_files(tmp_path: Path) -> dict[str, str]:
    x, y = load_digits(return_X_y=True)
    paths = {"x": tmp_path / "x.npy", "y": tmp_path / "y.npy"}
    np.save(paths["x"], x.astype(np.float32))
    np.save(paths["y"], y.astype(np.int64))
    return {k: str(v) for k, v in paths.items()}


def spec(files: dict[str, str], *, stream: bool, **train: object) -> dict:
    return {
        "name": "streamed-digits",
        "seed": 0,
        "data": {"source": "npy", **files, "stream": stream, "validation": 0.1, "preprocess": ["standardize"]},
        "model": {
            "input": [64],
            "layers": [{"dense": 32, "activation": "relu"}, {"dense": 10, "activation": "softmax"}],
        },
        "train": {
            "loss": "cross_entropy",
            "optimizer": "adam",
            "lr": 0.01,
            "batch_size": 64,
            "epochs": 8,
            "metrics": ["accuracy"],
            "checkpoint": False,
            **train,
        },
    }


def _prepared(files: dict[str, str], stream: bool, **kw: object):
    s = load_spec(spec(files, stream=stream))
    return prepare(s.data, task=s.task, seed=s.seed, **kw)


def test_streamed_splits_hold_the_same_rows_as_in_memory_ones(npy_files: dict[str, str]) -> None:
    on_disk, in_memory = _prepared(npy_files, True), _prepared(npy_files, False)
    for name in ("train", "val", "test"):
        split, reference = getattr(on_disk, name), getattr(in_memory, name)
        assert isinstance(split, StreamedSplit) and not isinstance(reference, StreamedSplit)
        assert isinstance(split.source, np.memmap)  # nothing was loaded but row numbers and targets
        assert torch.equal(split.y, reference.y)
        x, y = split[np.arange(len(split))[::-1].copy()]  # any order: read in file order, returned in this one
        assert torch.equal(y, reference.y.flip(0))
        # Fewer rows than FIT_ROWS: the sample is the whole split, so the pipelines agree.
        torch.testing.assert_close(x, reference.x.flip(0))
        one_x, one_y = split[3]
        torch.testing.assert_close(one_x, reference.x[3])


def test_a_streamed_spec_in_memory_has_the_same_sampled_pipeline(
    npy_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streamed_module, "FIT_ROWS", 100)
    on_disk, loaded = _prepared(npy_files, True), _prepared(npy_files, True, in_memory=True)
    assert on_disk.pipeline.state_dict() == loaded.pipeline.state_dict()
    assert on_disk.pipeline.state_dict() != _prepared(npy_files, False).pipeline.state_dict()  # 100 rows, not all
    x, _ = on_disk.train[np.arange(len(on_disk.train))]
    torch.testing.assert_close(x, loaded.train.x)


def test_training_streams_through_dataloader_workers_and_learns(npy_files: dict[str, str], tmp_path: Path) -> None:
    result = workflow.train(spec(npy_files, stream=True), home=tmp_path, progress=False)
    assert result.runtime["batching"] == "dataloader"
    assert result.test_metrics["accuracy"] > 0.9
    again = workflow.train(spec(npy_files, stream=True), home=tmp_path, progress=False)  # reproducible for a seed
    assert again.test_metrics == result.test_metrics


def test_evaluating_a_streamed_model_reads_the_test_split_from_disk(npy_files: dict[str, str], tmp_path: Path) -> None:
    import modelyard

    result = workflow.train(spec(npy_files, stream=True, epochs=3), home=tmp_path, progress=False)
    again = modelyard.evaluate(result.model_ref, home=tmp_path)
    assert again["accuracy"] == pytest.approx(result.test_metrics["accuracy"])


def test_stream_needs_a_memory_mapped_source() -> None:
    s = load_spec({**spec({}, stream=True), "data": {"source": "digits", "stream": True}})
    with pytest.raises(SpecError, match=r"`data.stream`.*'digits'.*use source npy") as info:
        prepare(s.data, task=s.task, seed=s.seed)
    assert info.value.field == "data.stream"


def test_nan_in_a_memory_mapped_file_fails_before_training(npy_files: dict[str, str]) -> None:
    x = np.load(npy_files["x"])
    x[1500, 7] = np.nan
    np.save(npy_files["x"], x)
    with pytest.raises(DataError, match="expected finite numbers, received nan in sample 1500, feature 7"):
        _prepared(npy_files, True)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"x": "missing.npy", "y": "y.npy"}, "not found for `data.x`"),
        ({"x": "objects.npy", "y": "y.npy"}, "`data.x`.*np.save"),
    ],
)
def test_bad_npy_files_are_one_line_errors(tmp_path: Path, files: dict[str, str], message: str) -> None:
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "y.npy", np.zeros(1, dtype=np.int64))
    s = load_spec(spec({k: str(tmp_path / v) for k, v in files.items()}, stream=True))
    with pytest.raises(DataError, match=message):
        prepare(s.data, task=s.task, seed=s.seed)


def test_worker_processes_read_the_same_seeded_batches(npy_files: dict[str, str]) -> None:
    from modelyard.training.batches import StreamingBatches

    split = _prepared(npy_files, True).train

    def epoch(workers: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        batches = StreamingBatches(
            split,
            batch_size=100,
            shuffle=True,
            generator=torch.Generator().manual_seed(3),
            device=torch.device("cpu"),
            workers=workers,
        )
        return list(batches)

    in_process, with_worker = epoch(0), epoch(1)
    assert len(in_process) == len(with_worker) == -(-len(split) // 100)
    for (xa, ya), (xb, yb) in zip(in_process, with_worker):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    seen = torch.cat([y for _, y in in_process])
    assert sorted(seen.tolist()) == sorted(split.y.tolist())  # every sample once per epoch
    assert not torch.equal(seen, split.y)  # shuffled
