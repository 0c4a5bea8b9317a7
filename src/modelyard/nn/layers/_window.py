"""Sliding-window arithmetic shared by convolutions and pooling: output sizes, 'same'
padding and the check that a window fits its input."""

from __future__ import annotations

import math

from modelyard.errors import ShapeError
from modelyard.nn.layers._common import Shape, as_tuple, fmt_shape

__all__ = ["window_out", "same_padding", "resolve_padding", "check_window"]


def window_out(size: int, window: int, stride: int, pad_total: int, dilation: int = 1) -> int:
    """Output length of a sliding window (PyTorch's Conv/Pool formula, floor mode)."""
    return (size + pad_total - dilation * (window - 1) - 1) // stride + 1


def same_padding(size: int, window: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(left, right) zero padding giving ``ceil(size / stride)`` outputs, as TensorFlow's
    'same': total = max((out - 1)·stride + dilation·(window - 1) + 1 - size, 0)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + dilation * (window - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def _x(sizes: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in sizes)


def resolve_padding(
    padding: str | int | tuple[int, ...],
    spatial: tuple[int, ...],
    window: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> list[tuple[int, int]]:
    """(left, right) padding per spatial axis for 'valid', 'same' or explicit sizes."""
    if padding == "valid":
        return [(0, 0)] * len(spatial)
    if padding == "same":
        return [same_padding(n, k, s, d) for n, k, s, d in zip(spatial, window, stride, dilation)]
    return [(p, p) for p in as_tuple(padding, len(spatial))]  # type: ignore[arg-type]


def check_window(
    field: str,
    option: str,
    what: str,
    in_shape: Shape,
    window: tuple[int, ...],
    dilation: tuple[int, ...],
    pads: list[tuple[int, int]],
) -> None:
    """The (dilated) window must fit into the padded input on every spatial axis."""
    spatial = in_shape[1:]
    extent = tuple(d * (k - 1) + 1 for k, d in zip(window, dilation))
    padded = tuple(n + left + right for n, (left, right) in zip(spatial, pads))
    if any(e > p for e, p in zip(extent, padded)):
        dilated = f" (dilated extent {_x(extent)})" if extent != window else ""
        raise ShapeError(
            f"Invalid value for `{field}.{option}`: expected a {what} no larger than the padded input "
            f"{_x(padded)} (input shape {fmt_shape(in_shape)}), received {_x(window)}{dilated}",
            field=f"{field}.{option}",
        )
