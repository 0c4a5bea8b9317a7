"""The one switch around the fast paths (modelyard.fast_paths): with it off no fast path runs, and
training ends where the fast paths end; version gates close a path outside its tested range."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from modelyard import fast_paths
from modelyard.spec import TrainSpec
from modelyard.training import fit
from modelyard.training.fast import TRAINING, cross_entropy, dense_step, fused_adam, fused_forward

OFF = "off (MODELYARD_FAST_PATHS=0 or fast_paths.set_enabled(False))"


def test_the_switch_reads_the_environment_and_the_python_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fast_paths.ENV, raising=False)
    assert fast_paths.enabled()
    for value in ("0", "false", "OFF", " no "):
        monkeypatch.setenv(fast_paths.ENV, value)
        assert not fast_paths.enabled(), value
    monkeypatch.setenv(fast_paths.ENV, "1")
    assert fast_paths.enabled()
    try:
        fast_paths.set_enabled(False)
        assert not fast_paths.enabled()
        monkeypatch.setenv(fast_paths.ENV, "0")
        fast_paths.set_enabled(True)
        assert fast_paths.enabled()  # the Python setting wins over the environment
    finally:
        fast_paths.set_enabled(None)
    assert not fast_paths.enabled()  # back to the environment
    monkeypatch.setenv(fast_paths.ENV, "1")
    with fast_paths.disabled():
        assert not fast_paths.enabled()
    assert fast_paths.enabled()


def test_versions_are_compared_by_release(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = fast_paths.Gate("test_gate", "torch", "2.4", "2.14")
    for version, open_ in [
        ("2.13.0+cpu", True),
        ("2.4.0", True),
        ("2.14.0", False),
        ("2.3.1", False),
        ("2.14.0rc1", False),
    ]:
        monkeypatch.setattr(fast_paths, "_installed", lambda package, v=version: v)
        assert gate.open() is open_, version
    monkeypatch.setattr(fast_paths, "_installed", lambda package: None)
    assert gate.blocked() == "off (torch is not installed)"


def _data() -> SimpleNamespace:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(192, 1, 6, 6, generator=g)
    y = (x[:, 0, 0, 0] + x[:, 0, 1, 1] > 0).long() + (x[:, 0, 2, 2] > 0.5).long()
    return SimpleNamespace(train=SimpleNamespace(x=x, y=y), val=None, num_classes=3, pipeline=None)


def _network(kind: str) -> nn.Module:
    torch.manual_seed(1)
    if kind == "dense":
        return nn.Sequential(nn.Flatten(), nn.Linear(36, 32), nn.ReLU(), nn.Linear(32, 3))
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3))


def _fit(kind: str) -> tuple[nn.Module, dict]:
    spec = TrainSpec.model_validate(
        {
            "loss": "cross_entropy",
            "optimizer": "adam",
            "lr": 0.01,
            "batch_size": 32,
            "epochs": 2,
            "checkpoint": False,
            "precision": "fp32",
        }
    )
    network = _network(kind)
    result = fit(network, _data(), spec, seed=0, progress=False)
    return network, result.runtime


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_with_the_switch_off_training_is_plain_autograd_and_optimizer_step(
    monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    fast, fast_runtime = _fit(kind)
    assert fast_runtime["fast_paths"] == dict.fromkeys(TRAINING, "on")
    if kind == "dense":
        assert fast_runtime["step"] == "dense-fused" and fast_runtime["optimizer_step"] == "kernel"
    else:
        assert fast_runtime["rewrites"] == {"pool_then_activation": 1, "one_channel_conv_gemm": 1}

    def refuse(what: str):
        def _raise(*args, **kwargs):
            raise AssertionError(f"{what} ran with the fast paths off")

        return _raise

    counts = {"backward": 0, "step": 0}
    backward, step = torch.Tensor.backward, torch.optim.Adam.step

    def counted_backward(self, *args, **kwargs):
        counts["backward"] += 1
        return backward(self, *args, **kwargs)

    def counted_step(self, *args, **kwargs):
        counts["step"] += 1
        return step(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setenv(fast_paths.ENV, "0")
        patch.setattr(dense_step.DenseStep, "__call__", refuse("the tape-free dense step"))
        patch.setattr(cross_entropy, "cross_entropy_value_and_grad", refuse("the tape-free cross-entropy"))
        patch.setattr(fused_adam.FusedAdamStep, "__call__", refuse("the direct fused-Adam call"))
        patch.setattr(fused_forward.FusedForward, "__call__", refuse("the rewritten conv forward"))
        patch.setattr(fused_forward, "one_channel_conv2d", refuse("the one-channel GEMM convolution"))
        patch.setattr(torch.Tensor, "backward", counted_backward)
        patch.setattr(torch.optim.Adam, "step", counted_step)
        plain, plain_runtime = _fit(kind)
    assert plain_runtime["step"] == "autograd" and plain_runtime["optimizer_step"] == "torch"
    assert plain_runtime["rewrites"] == {} and plain_runtime["fast_paths"] == dict.fromkeys(TRAINING, OFF)
    steps = 2 * (192 // 32)
    assert counts == {"backward": steps, "step": steps}  # every step through autograd and optimizer.step
    for a, b in zip(fast.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # the same training, up to summation order
