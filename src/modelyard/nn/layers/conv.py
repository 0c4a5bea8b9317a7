"""1-D and 2-D convolutions over channels-first inputs ``[C, L]`` and ``[C, H, W]``."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from modelyard._validation import StrictModel
from modelyard.nn.activations import ActivationName, make_activation
from modelyard.nn.init import BiasInitOption, InitOption, initialize
from modelyard.nn.layers._common import (
    LAYERS,
    IntOrPair,
    Padding,
    Padding1d,
    PositiveInt,
    Shape,
    as_tuple,
    require_rank,
    with_activation,
)
from modelyard.nn.layers._window import check_window, resolve_padding, window_out

__all__ = ["Conv1dOptions", "Conv2dOptions"]


class _ConvCommon(StrictModel):
    filters: int = Field(ge=1)
    activation: ActivationName = None
    init: InitOption = None
    bias_init: BiasInitOption = None
    use_bias: bool = True


class Conv1dOptions(_ConvCommon):
    kernel: PositiveInt = 3
    stride: PositiveInt = 1
    padding: Padding1d = "valid"
    dilation: PositiveInt = 1


class Conv2dOptions(_ConvCommon):
    kernel: IntOrPair = 3
    stride: IntOrPair = 1
    padding: Padding = "valid"
    dilation: IntOrPair = 1


def _conv(opts: Conv1dOptions | Conv2dOptions, in_shape: Shape, field: str, dims: int) -> tuple[nn.Module, Shape]:
    layer = f"conv{dims}d"
    layout = "[C, L]" if dims == 1 else "[C, H, W]"
    hint = ""
    if len(in_shape) == 1 and dims == 2:
        hint = "add a reshape layer before it, such as {reshape: [1, 28, 28]}"
    elif len(in_shape) == 1:
        hint = "add a reshape layer before it, such as {reshape: [1, -1]}"
    require_rank(in_shape, (dims + 1,), field, layer, f"a channels-first {layout} input", hint)
    spatial = in_shape[1:]
    kernel, stride, dilation = (as_tuple(v, dims) for v in (opts.kernel, opts.stride, opts.dilation))
    pads = resolve_padding(opts.padding, spatial, kernel, stride, dilation)
    check_window(field, "kernel", "kernel", in_shape, kernel, dilation, pads)
    out = tuple(
        window_out(n, k, s, left + right, d)
        for n, k, s, d, (left, right) in zip(spatial, kernel, stride, dilation, pads)
    )

    symmetric = all(left == right for left, right in pads)
    conv_cls = nn.Conv1d if dims == 1 else nn.Conv2d
    conv = conv_cls(
        in_shape[0],
        opts.filters,
        kernel,
        stride=stride,
        padding=tuple(left for left, _ in pads) if symmetric else 0,
        dilation=dilation,
        bias=opts.use_bias,
    )
    initialize(conv.weight, conv.bias, init=opts.init, bias_init=opts.bias_init, activation=opts.activation)
    pad = None
    if not symmetric:
        # F.pad order: last axis first, (left, right) per axis.
        flat = tuple(p for pair in reversed(pads) for p in pair)
        pad = nn.ConstantPad1d(flat, 0.0) if dims == 1 else nn.ConstantPad2d(flat, 0.0)
    module = with_activation("conv", conv, make_activation(opts.activation), pad=pad)
    return module, (opts.filters, *out)


@LAYERS.component("conv1d", "conv_1d", "convolution1d", options=Conv1dOptions, primary="filters")
def conv1d(opts: Conv1dOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """1-D convolution over ``[C, L]`` → ``[filters, L']``."""
    return _conv(opts, in_shape, field, 1)


@LAYERS.component("conv2d", "conv_2d", "convolution2d", options=Conv2dOptions, primary="filters")
def conv2d(opts: Conv2dOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
    """2-D convolution over ``[C, H, W]`` → ``[filters, H', W']``."""
    return _conv(opts, in_shape, field, 2)
