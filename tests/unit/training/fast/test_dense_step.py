"""The fused dense-stack step against autograd on the same network, inputs and loss."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modelyard.spec import TrainSpec
from modelyard.training import fit, setup
from modelyard.training.fast.cross_entropy import cross_entropy_value_and_grad
from modelyard.training.fast.dense_step import DenseStep, dense_stack
from modelyard.training.losses import LOSSES
from tests.support.sequences import build

ACTIVATIONS = [
    nn.ReLU,
    nn.Tanh,
    nn.Sigmoid,
    lambda: nn.LeakyReLU(0.1),
    nn.GELU,
    lambda: nn.GELU("tanh"),
    nn.SiLU,
    nn.ELU,
    nn.SELU,
    nn.Softplus,
]


def stack(act_a, act_b, *, bias: bool = True) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(),
        nn.Sequential(nn.Linear(12, 16, bias=bias), act_a()),
        nn.Sequential(nn.Linear(16, 8, bias=bias), act_b()),
        nn.Linear(8, 3, bias=bias),
        nn.Identity(),
    )


def autograd_grads(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    net.zero_grad(set_to_none=True)
    loss = loss_fn(net(x), y)
    loss.backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    return loss.detach(), grads


@pytest.mark.parametrize("act_a", ACTIVATIONS)
@pytest.mark.parametrize("act_b", [nn.ReLU, nn.Tanh])
def test_gradients_equal_autograd_for_every_activation(act_a, act_b) -> None:
    net = stack(act_a, act_b)
    x, y = torch.randn(32, 3, 4), torch.randint(0, 3, (32,))
    ref_loss, ref = autograd_grads(net, x, y, F.cross_entropy)
    ops = dense_stack(net)
    assert ops is not None
    loss, out = DenseStep(net, ops, dtype=None)(x, y, F.cross_entropy)
    assert torch.allclose(loss, ref_loss, rtol=0, atol=1e-6)
    assert torch.allclose(out, net(x), rtol=0, atol=1e-6)
    for got, want in zip((p.grad for p in net.parameters()), ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_without_a_flatten_dense_layers_act_on_the_last_axis() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Sequential(nn.Linear(5, 8), nn.Tanh()), nn.Dropout(0.0), nn.Linear(8, 3))
    x, y = torch.randn(6, 4, 5), torch.randn(6, 4, 3)  # [N, T, F]: each of the T positions is a row
    ref_loss, ref = autograd_grads(net, x, y, F.mse_loss)
    loss, out = DenseStep(net, dense_stack(net), dtype=None)(x, y, F.mse_loss)
    assert out.shape == (6, 4, 3)
    torch.testing.assert_close(loss, ref_loss)
    for got, want in zip((p.grad for p in net.parameters()), ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "loss", [{"cross_entropy": {"label_smoothing": 0.1}}, "mse", "mae", {"huber": 0.5}, "binary_cross_entropy"]
)
def test_any_loss_gets_its_exact_gradient(loss) -> None:
    loss_fn = LOSSES.build(TrainSpec.model_validate({"loss": loss}).loss)
    net = stack(nn.ReLU, nn.ReLU, bias=False)
    x = torch.randn(20, 12)
    y = torch.randint(0, 3, (20,)) if loss == {"cross_entropy": {"label_smoothing": 0.1}} else torch.rand(20, 3)
    ref_loss, ref = autograd_grads(net, x, y, loss_fn)
    loss_value, _ = DenseStep(net, dense_stack(net), dtype=None)(x, y, loss_fn)
    torch.testing.assert_close(loss_value, ref_loss)
    for got, want in zip((p.grad for p in net.parameters()), ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_dropout_masks_and_gradients_match_autograd_through_native_dropout() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 4))
    x, y = torch.randn(16, 10), torch.randint(0, 4, (16,))

    def reference(inputs: torch.Tensor) -> torch.Tensor:  # the same kernel, so the same random mask
        h = torch.relu(net[0](inputs))
        return net[3](torch.ops.aten.native_dropout(h, 0.3, True)[0])

    torch.manual_seed(7)
    loss = F.cross_entropy(reference(x), y)
    loss.backward()
    ref = [p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    torch.manual_seed(7)
    got_loss, _ = DenseStep(net, dense_stack(net), dtype=None)(x, y, F.cross_entropy)
    torch.testing.assert_close(got_loss, loss.detach())
    for got, want in zip((p.grad for p in net.parameters()), ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_bf16_follows_autocast() -> None:
    net = stack(nn.ReLU, nn.Tanh)
    x, y = torch.randn(64, 12), torch.randint(0, 3, (64,))
    net.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
        ref_loss = F.cross_entropy(out, y)
    ref_loss.backward()
    ref = [p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    loss, got_out = DenseStep(net, dense_stack(net), dtype=torch.bfloat16)(x, y, F.cross_entropy)
    assert got_out.dtype == out.dtype == torch.bfloat16
    torch.testing.assert_close(loss, ref_loss.detach(), rtol=1e-2, atol=1e-2)
    for p, want in zip(net.parameters(), ref):
        assert p.grad.dtype == torch.float32  # accumulated into the fp32 buffers
        torch.testing.assert_close(p.grad, want, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize(
    "network",
    [
        nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(2, 1)),
        nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)),
        nn.Sequential(nn.Linear(4, 4), nn.Softmax(dim=1)),
        nn.Sequential(nn.Embedding(5, 4), nn.Flatten(), nn.Linear(4, 2)),
        nn.Sequential(nn.ReLU(), nn.Linear(4, 2)),
        nn.Sequential(nn.Linear(4, 4), nn.Flatten(), nn.Linear(4, 2)),
        nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(-0.5), nn.Linear(4, 2)),
    ],
)
def test_anything_but_a_dense_stack_trains_through_autograd(network: nn.Module) -> None:
    assert dense_stack(network) is None


def test_pruning_masks_and_hooks_keep_autograd() -> None:
    from torch.nn.utils import prune

    pruned = stack(nn.ReLU, nn.ReLU)
    prune.l1_unstructured(pruned[1][0], "weight", amount=0.5)  # weight = weight_orig * mask, in a pre-hook
    assert dense_stack(pruned) is None
    hooked = stack(nn.ReLU, nn.ReLU)
    hooked[2].register_forward_hook(lambda module, args, out: out * 2)
    assert dense_stack(hooked) is None
    assert dense_stack(stack(nn.ReLU, nn.ReLU)) is not None


def _train(monkeypatch: pytest.MonkeyPatch, fused: bool, **train: object) -> tuple[nn.Module, dict]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 3))
    spec = TrainSpec.model_validate(
        {
            "loss": "cross_entropy",
            "optimizer": "adam",
            "lr": 0.01,
            "batch_size": 32,
            "epochs": 3,
            "metrics": ["accuracy"],
            "checkpoint": False,
            **train,
        }
    )
    data = SimpleNamespace(train=SimpleNamespace(x=x, y=y), val=None, num_classes=3, pipeline=None)
    with monkeypatch.context() as patch:
        if not fused:
            patch.setattr(setup, "dense_stack", lambda network: None)
        result = fit(net, data, spec, seed=0, progress=False)
    return net, result.runtime


@pytest.mark.parametrize(
    "train",
    [
        {},
        {"l2": 0.01, "l1": 0.001, "clip_grad_norm": 0.5},
        {"optimizer": "sgd", "schedule": "cosine"},
        {"optimizer": {"adamw": {}}, "weight_decay": 0.1},
    ],
)
def test_a_whole_fit_ends_where_autograd_ends(monkeypatch: pytest.MonkeyPatch, train: dict) -> None:
    fused, runtime = _train(monkeypatch, True, **train)
    reference, ref_runtime = _train(monkeypatch, False, **train)
    assert runtime["step"] == "dense-fused" and ref_runtime["step"] == "autograd"
    for a, b in zip(fused.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_the_loop_never_zeroes_the_persistent_gradient_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(torch.optim.Optimizer, "zero_grad", lambda self, set_to_none=True: calls.append(set_to_none))
    _train(monkeypatch, True)
    assert calls == []  # zero_grad would free the buffers DenseStep writes into


def test_plain_cross_entropy_takes_the_tape_free_gradient_with_the_same_result(monkeypatch) -> None:
    loss_fn = LOSSES.build(TrainSpec.model_validate({"loss": "cross_entropy"}).loss)
    net = stack(nn.ReLU, nn.Tanh)
    x, y = torch.randn(32, 12), torch.randint(0, 3, (32,))
    ref_loss, ref = autograd_grads(net, x, y, loss_fn)
    calls = []
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(a))  # must not be reached
    step = DenseStep(net, dense_stack(net), dtype=None, value_and_grad=cross_entropy_value_and_grad)
    loss_value, _ = step(x, y, loss_fn)
    assert calls == []
    torch.testing.assert_close(loss_value, ref_loss)
    for got, want in zip((p.grad for p in net.parameters()), ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "layers",
    [
        [{"embedding": 9, "dim": 4, "pad": 0}, {"attention": 2}, {"token_pool": "mean"}, {"dense": 2}],
        [{"embedding": 9, "dim": 4}, {"transformer": 1, "heads": 2}, "flatten", {"dense": 2}],
        [{"embedding": 9, "dim": 4, "pad": 0}, {"gru": 3}, {"dense": 2}],
    ],
)
def test_sequence_layers_train_through_autograd(layers: list) -> None:
    assert dense_stack(build(layers, [5])) is None
