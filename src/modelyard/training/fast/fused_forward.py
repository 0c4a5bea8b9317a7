"""The training forward pass of a conv net, rewritten where an exact faster form exists.

``fused_forward(network, precision)`` walks the network's leaf modules and returns a
callable that runs the same parameters through the same math, with two rewrites:

* **pool, then activation.** ``max_pool(relu(z)) == relu(max_pool(z))`` for any
  non-decreasing activation, and the gradients agree too (the pool picks the same
  element; where relu is flat both are zero). Applying the activation after a 2x2 pool
  touches a quarter of the memory, forward and backward (a CPU conv step is bound by
  memory traffic, not FLOPs).
* **weight gradient of a one-channel convolution as GEMMs.** oneDNN's weight-gradient
  kernel for ``in_channels == 1`` (every grey-scale image net's first layer) is slow; the
  same gradient as per-image GEMMs of the shifted input windows and ``grad_out`` is several
  times faster (measurements: docs/performance.md). Only for fp32 on a CPU: under autocast
  and on GPUs the vendor kernels stay.

The stored model is untouched: prediction, export and evaluation use the network as
built. ``FusedForward.rewrites`` counts what changed, for ``FitResult.runtime``.

A fast path behind ``modelyard.fast_paths``: the GEMM gradient calls aten's
``convolution_backward`` for the input gradient, so ``GATE`` names the torch versions it was
tested with; outside them, or with ``MODELYARD_FAST_PATHS=0``, the network's own forward runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from modelyard.fast_paths import Gate
from modelyard.training.fast._modules import is_plain, leaves

__all__ = ["GATE", "FusedForward", "fused_forward", "one_channel_conv2d", "shifted_windows"]

GATE = Gate("fused_forward", "torch", "2.4", "2.14")

Tensor = torch.Tensor
Step = Callable[[Tensor], Tensor]

# Activations f with f(max(a, b)) == max(f(a), f(b)) whose pool-first gradient is exact.
_MONOTONE = (nn.ReLU, nn.LeakyReLU)  # (negative slopes < 0 are not monotone: checked below)


def shifted_windows(
    x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int]
) -> Tensor:
    """One-channel images ``x`` [N, 1, H, W] → ``[kh·kw, N, Ho, Wo]``: for each kernel tap, the
    input pixel every output pixel multiplies (im2col, tap-major; strided copies of the
    zero-padded image, much faster than one gather with a unit channel axis)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    image = F.pad(x[:, 0], (pw, pw, ph, ph))  # [N, H + 2ph, W + 2pw]
    ho = (image.shape[1] - dh * (kh - 1) - 1) // sh + 1
    wo = (image.shape[2] - dw * (kw - 1) - 1) // sw + 1
    return torch.stack(
        [
            image[:, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
            for i in range(kh)
            for j in range(kw)
        ]
    )


class _OneChannelConv2d(torch.autograd.Function):
    """``F.conv2d`` of a one-channel input; the weight gradient as per-image GEMMs.

    ``grad_w[o, tap] = Σ_n Σ_pixels window[tap, n, pixel] · grad_out[n, pixel, o]``: a
    batched GEMM over images then a sum, instead of oneDNN's slow unit-channel kernel. The
    input of a first layer needs no gradient, so none is computed unless asked for.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.geometry = (stride, padding, dilation)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, stride, padding, dilation)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.geometry
        c_out, _, kh, kw = weight.shape
        n = grad_out.shape[0]
        rows = grad_out.permute(0, 2, 3, 1).reshape(n, -1, c_out)  # [N, Ho·Wo, C_out] (a view when channels-last)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out,
                x,
                weight,
                None,
                list(stride),
                list(padding),
                list(dilation),
                False,
                [0, 0],
                1,
                [True, False, False],
            )[0]
        if ctx.needs_input_grad[1]:
            windows = shifted_windows(x, (kh, kw), stride, padding, dilation).view(kh * kw, n, -1)
            per_image = torch.bmm(windows.transpose(0, 1), rows)  # [N, kh·kw, C_out]
            grad_w = per_image.sum(0).t().reshape(c_out, 1, kh, kw)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = rows.sum((0, 1))
        return grad_x, grad_w, grad_b, None, None, None


def one_channel_conv2d(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``conv(x)`` for a one-channel ``conv`` (zero padding), with the GEMM weight gradient."""
    return _OneChannelConv2d.apply(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)


def _is_one_channel_conv(module: nn.Module) -> bool:
    return (
        isinstance(module, nn.Conv2d)
        and module.in_channels == 1
        and module.groups == 1
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)
    )


def _in_place(activation: nn.Module) -> Step:
    if isinstance(activation, nn.LeakyReLU):
        slope = activation.negative_slope
        return lambda x: F.leaky_relu_(x, slope)
    return torch.relu_


class FusedForward:
    """The rewritten forward: a list of steps over the network's own modules."""

    def __init__(self, steps: list[Step], rewrites: dict[str, int]) -> None:
        self.steps = steps
        self.rewrites = rewrites

    def __call__(self, x: Tensor) -> Tensor:
        for step in self.steps:
            x = step(x)
        return x


def fused_forward(
    network: nn.Module, *, device: torch.device, autocast_dtype: torch.dtype | None
) -> FusedForward | None:
    """The rewritten training forward of ``network``, or None when nothing would change.

    Only plain layer stacks are rewritten (``network.layers`` or an ``nn.Sequential``).
    """
    if not GATE.open():
        return None
    body = getattr(network, "layers", network)
    if not isinstance(body, nn.Sequential) or not (is_plain(network) and is_plain(body)):
        return None
    if not getattr(network, "plain_chain", True):
        return None  # its forward passes a padding mask between the layers; calling them one by one would drop it
    layers = leaves(body)
    gemm_ok = device.type == "cpu" and autocast_dtype is None
    steps: list[Step] = []
    rewrites = {"pool_then_activation": 0, "one_channel_conv_gemm": 0}
    i = 0
    while i < len(layers):
        leaf = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        monotone = isinstance(leaf, _MONOTONE) and getattr(leaf, "negative_slope", 0.0) >= 0
        if monotone and isinstance(nxt, nn.MaxPool2d) and not nxt.return_indices and is_plain(leaf) and is_plain(nxt):
            # Pool first: the activation then touches a quarter of the data, in place
            # (max pooling's backward keeps its input and indices, not its output).
            steps += [nxt, _in_place(leaf)]
            rewrites["pool_then_activation"] += 1
            i += 2
            continue
        if gemm_ok and _is_one_channel_conv(leaf) and is_plain(leaf):
            steps.append(lambda x, conv=leaf: one_channel_conv2d(conv, x))
            rewrites["one_channel_conv_gemm"] += 1
        else:
            steps.append(leaf)
        i += 1
    if not any(rewrites.values()):
        return None
    return FusedForward(steps, {k: v for k, v in rewrites.items() if v})
