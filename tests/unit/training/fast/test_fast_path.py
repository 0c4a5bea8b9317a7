"""`modelyard train` takes the fast path by default, and a change cannot silently lose it.

The guards do not trust the runtime report alone: the slow paths are booby-trapped (the
DataLoader, per-sample Dataset indexing and torch's for-loop Adam raise when used) and the
fast kernels are counted, so the report and what actually ran must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch.optim import adam as torch_adam
from torch.utils.data import DataLoader, TensorDataset

from modelyard import workflow
from modelyard.cli.main import cli
from modelyard.spec import TrainSpec
from modelyard.training import batches as batches_module
from modelyard.training import runtime
from modelyard.training.fast.allocator import keep_freed_memory
from modelyard.training.fast.dense_step import DenseStep
from modelyard.training.optimizers import OPTIMIZERS, implementation

MLP_SPEC = {
    "name": "fast-mlp",
    "seed": 0,
    "data": {"source": "digits", "validation": 0.1, "preprocess": ["scale"]},
    "model": {"input": [64], "layers": [{"dense": 32, "activation": "relu"}, {"dense": 10, "activation": "softmax"}]},
    "train": {
        "loss": "cross_entropy",
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 128,
        "epochs": 1,
        "metrics": ["accuracy"],
        "checkpoint": False,
    },
}


@pytest.fixture
def traps(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Slow paths raise; fast paths are counted."""
    counts = {
        "in_memory_epochs": 0,
        "in_memory_batches": 0,
        "adam_kernel_calls": 0,
        "dense_steps": 0,
        "backward_calls": 0,
    }

    def refuse(what: str):
        def _raise(*args, **kwargs):
            raise AssertionError(f"the training loop fell back to {what}")

        return _raise

    monkeypatch.setattr(DataLoader, "__iter__", refuse("DataLoader batching"))
    monkeypatch.setattr(TensorDataset, "__getitem__", refuse("per-sample Dataset indexing"))
    monkeypatch.setattr(torch_adam, "_single_tensor_adam", refuse("the for-loop Adam"))

    original_iter = batches_module.InMemoryBatches.__iter__

    def counted_iter(self):
        counts["in_memory_epochs"] += 1
        for batch in original_iter(self):
            counts["in_memory_batches"] += 1
            yield batch

    monkeypatch.setattr(batches_module.InMemoryBatches, "__iter__", counted_iter)

    def counter(key: str, fn):
        def counted(*args, **kwargs):
            counts[key] += 1
            return fn(*args, **kwargs)

        return counted

    # The kernels themselves: torch.optim's fused path and modelyard's direct call both end here.
    monkeypatch.setattr(torch, "_fused_adam_", counter("adam_kernel_calls", torch._fused_adam_))
    monkeypatch.setattr(torch_adam, "_multi_tensor_adam", counter("adam_kernel_calls", torch_adam._multi_tensor_adam))
    monkeypatch.setattr(DenseStep, "__call__", counter("dense_steps", DenseStep.__call__))
    monkeypatch.setattr(torch.Tensor, "backward", counter("backward_calls", torch.Tensor.backward))
    return counts


def test_cli_train_runs_in_memory_batches_and_fused_adam(tmp_path: Path, traps: dict[str, int]) -> None:
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(MLP_SPEC), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "train", str(spec_file), "--no-progress"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert traps["in_memory_epochs"] == 1  # the one epoch went through the index-gather batches
    assert traps["in_memory_batches"] > 1
    # One fused/foreach kernel call per step (the for-loop Adam would have raised).
    assert traps["adam_kernel_calls"] == traps["in_memory_batches"]
    # A dense stack trains through the fused step: no autograd backward over the network.
    assert traps["dense_steps"] == traps["in_memory_batches"] and traps["backward_calls"] == 0


def test_workflow_reports_the_fast_path_it_ran(tmp_path: Path, traps: dict[str, int]) -> None:
    keep_freed_memory()  # what the entry points (`modelyard train`, the job worker) do for their process
    result = workflow.train(MLP_SPEC, home=tmp_path, progress=False)
    assert result.runtime["batching"] == "in-memory-index"
    assert result.runtime["optimizer"] == "fused"  # torch 2.13 has fused Adam on CPU
    assert result.runtime["compiled"] is False  # compile is an option, not the default
    assert result.runtime["step"] == "dense-fused" and result.runtime["optimizer_step"] == "kernel"
    assert result.runtime["allocator"] == "glibc-kept"
    assert result.runtime["precision"] in {"fp32", "bf16"}
    assert traps["adam_kernel_calls"] > 0


def test_conv_net_defaults_to_channels_last(tmp_path: Path, traps: dict[str, int]) -> None:
    spec = {
        **MLP_SPEC,
        "name": "fast-cnn",
        "data": {"source": "digits", "validation": 0.1, "preprocess": ["scale", {"reshape": [1, 8, 8]}]},
        "model": {
            "input": [1, 8, 8],
            "layers": [
                {"conv2d": 4, "kernel": 3, "padding": "same", "activation": "relu"},
                {"maxpool2d": 2},
                "flatten",
                {"dense": 10, "activation": "softmax"},
            ],
        },
    }
    result = workflow.train(spec, overrides=["train.precision=fp32"], home=tmp_path, progress=False)
    assert result.runtime["channels_last"] is True
    assert result.runtime["batching"] == "in-memory-index"
    # conv → relu → maxpool trains as conv → maxpool → relu, the one-channel conv's weight
    # gradient as GEMMs (training/fast/fused_forward.py); the network itself is autograd's.
    assert result.runtime["rewrites"] == {"pool_then_activation": 1, "one_channel_conv_gemm": 1}
    assert result.runtime["step"] == "autograd" and traps["backward_calls"] == traps["in_memory_batches"]


def test_spec_defaults_are_the_fast_ones() -> None:
    train = TrainSpec.model_validate({"loss": "cross_entropy"})
    assert train.precision == "auto" and train.compile is False


@pytest.mark.parametrize("name", ["gd", "sgd", "adam", "adamw", "adagrad"])
def test_optimizers_with_fused_kernels_use_them(name: str) -> None:
    optimizer = OPTIMIZERS.build(
        TrainSpec.model_validate({"loss": "mse", "optimizer": name}).optimizer,
        [torch.nn.Parameter(torch.zeros(3, 2))],
        lr=0.1,
        weight_decay=0.0,
    )
    assert implementation(optimizer) == "fused"


def test_rmsprop_without_a_fused_kernel_uses_foreach() -> None:
    optimizer = OPTIMIZERS.build(
        TrainSpec.model_validate({"loss": "mse", "optimizer": "rmsprop"}).optimizer,
        [torch.nn.Parameter(torch.zeros(3, 2))],
        lr=0.1,
        weight_decay=0.0,
    )
    assert implementation(optimizer) == "foreach"


@pytest.mark.parametrize(
    ("running", "cores", "expected"),
    [([1, 1, 1], 2, 2), ([2, 3, 2], 2, 1), ([9, 9, 9], 4, 1), ([3, 2, 4], 8, 7), ([None], 4, 4)],
)
def test_threads_match_the_idle_cores(monkeypatch: pytest.MonkeyPatch, running, cores, expected) -> None:
    """Other runnable jobs take cores away (spinning OpenMP threads on a shared core thrash)."""
    samples = iter(running)
    monkeypatch.setattr(runtime, "_running_tasks", lambda: next(samples))
    monkeypatch.setattr(runtime.time, "sleep", lambda _: None)
    assert runtime.idle_cores(cores, samples=len(running)) == expected
