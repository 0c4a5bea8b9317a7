"""The conv-net training rewrites (training.fast.fused_forward), against the plain torch computation they replace."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modelyard.training.fast.fused_forward import fused_forward, one_channel_conv2d, shifted_windows
from tests.support.sequences import build, padded_ids

CPU = torch.device("cpu")


def cnn(c_in: int, act: type[nn.Module] = nn.ReLU, channels_last: bool = False) -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Sequential(nn.Conv2d(c_in, 6, 3, padding=1), act()),
        nn.MaxPool2d(2),
        nn.Sequential(nn.Conv2d(6, 8, 3, padding=1), act()),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 5),
    )
    return net.to(memory_format=torch.channels_last) if channels_last else net


def grads(net: nn.Module, forward, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    net.zero_grad(set_to_none=True)
    out = forward(x)
    F.cross_entropy(out, y).backward()
    return out.detach(), [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("channels_last", [False, True])
def test_pool_then_relu_is_bitwise_the_same_training_step(channels_last: bool) -> None:
    net = cnn(3, channels_last=channels_last)
    x, y = torch.randn(10, 3, 16, 16), torch.randint(0, 5, (10,))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    fused = fused_forward(net, device=CPU, autocast_dtype=None)
    assert fused is not None and fused.rewrites == {"pool_then_activation": 2}
    out, got = grads(net, fused, x, y)
    ref_out, want = grads(net, net, x, y)
    assert torch.equal(out, ref_out)
    assert all(torch.equal(a, b) for a, b in zip(got, want))


def test_leaky_relu_is_reordered_and_other_activations_are_not() -> None:
    assert fused_forward(cnn(3, act=lambda: nn.LeakyReLU(0.2)), device=CPU, autocast_dtype=None).rewrites == {
        "pool_then_activation": 2
    }
    assert fused_forward(cnn(3, act=nn.GELU), device=CPU, autocast_dtype=None) is None  # GELU is not monotone


@pytest.mark.parametrize("channels_last", [False, True])
def test_one_channel_first_layer_gradients_match_onednn(channels_last: bool) -> None:
    net = cnn(1, channels_last=channels_last)
    x, y = torch.rand(12, 1, 16, 16), torch.randint(0, 5, (12,))
    fused = fused_forward(net, device=CPU, autocast_dtype=None)
    assert fused.rewrites == {"pool_then_activation": 2, "one_channel_conv_gemm": 1}
    out, got = grads(net, fused, x, y)
    ref_out, want = grads(net, net, x, y)
    torch.testing.assert_close(out, ref_out)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_hooked_or_pruned_layers_are_left_to_their_forward() -> None:
    from torch.nn.utils import prune

    net = cnn(1)
    prune.l1_unstructured(net[0][0], "weight", amount=0.5)
    net[2][1].register_forward_hook(lambda module, args, out: out)
    assert fused_forward(net, device=CPU, autocast_dtype=None).rewrites == {"pool_then_activation": 1}


def test_under_autocast_or_off_the_cpu_the_vendor_convolution_stays() -> None:
    assert fused_forward(cnn(1), device=CPU, autocast_dtype=torch.bfloat16).rewrites == {"pool_then_activation": 2}
    assert fused_forward(cnn(1), device=torch.device("cuda"), autocast_dtype=None).rewrites == {
        "pool_then_activation": 2
    }


@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation", "bias"),
    [(3, 1, 1, 1, True), ((3, 5), (2, 1), (1, 2), (1, 2), True), (2, 2, 0, 1, False), (5, 3, 2, 1, True)],
)
def test_one_channel_conv_weight_gradient_for_any_geometry(kernel, stride, padding, dilation, bias) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 4, kernel, stride=stride, padding=padding, dilation=dilation, bias=bias)
    x = torch.rand(3, 1, 13, 11, requires_grad=True)
    target = torch.randn_like(conv(x))
    (conv(x) * target).sum().backward()
    want = [p.grad.clone() for p in conv.parameters()] + [x.grad.clone()]
    conv.zero_grad(set_to_none=True)
    x.grad = None
    (one_channel_conv2d(conv, x) * target).sum().backward()
    for a, b in zip([p.grad for p in conv.parameters()] + [x.grad], want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_shifted_windows_are_im2col() -> None:
    x = torch.rand(2, 1, 6, 7)
    windows = shifted_windows(x, (3, 3), (2, 1), (1, 1), (1, 1))  # [9, N, Ho, Wo]
    unfolded = F.unfold(x, 3, padding=1, stride=(2, 1))  # [N, 9, Ho·Wo]
    assert torch.equal(windows.flatten(2).permute(1, 0, 2), unfolded)


def test_a_network_passing_a_padding_mask_is_not_rewritten() -> None:
    # fused_forward calls the layers one by one; the transformer would lose the padding mask.
    def layers(pad: int | None) -> list:
        return [
            {"embedding": 12, "dim": 8, "pad": pad},
            {"transformer": 1, "heads": 2},
            {"reshape": [1, 6, 8]},
            {"conv2d": 2, "kernel": 3, "padding": "same"},
            "relu",
            {"maxpool2d": 2},
            "flatten",
            {"dense": 2},
        ]

    plain = build(layers(None), [6])
    assert fused_forward(plain, device=CPU, autocast_dtype=None) is not None  # the rewrite applies to this shape
    masked = build(layers(0), [6])
    assert not masked.plain_chain
    assert fused_forward(masked, device=CPU, autocast_dtype=None) is None
    ids = padded_ids([6, 2], 6, 12)
    out = masked(ids)
    assert out.shape == (2, 2) and torch.isfinite(out).all()
