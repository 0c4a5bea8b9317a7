"""Max and average pooling (windowed and global) over channels-first inputs.

Average pooling averages real input values only: padding never counts towards the
mean (Keras's rule for 'same'; torch's ``count_include_pad=False``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import model_validator
from torch import nn

from modelyard._validation import StrictModel
from modelyard.errors import ShapeError
from modelyard.nn.layers._common import (
    LAYERS,
    IntOrPair,
    OptionalIntOrPair,
    OptionalPositiveInt,
    Padding,
    Padding1d,
    PositiveInt,
    Shape,
    as_tuple,
    fmt_shape,
    require_rank,
)
from modelyard.nn.layers._window import check_window, resolve_padding, window_out

__all__ = ["Pool1dOptions", "Pool2dOptions", "PoolOptions", "PaddedPool", "GlobalPool"]


class _HalfPoolPadding(StrictModel):
    """torch refuses pool padding over half the window (such a window could see only padding)."""

    @model_validator(mode="after")
    def _padding_fits(self) -> _HalfPoolPadding:
        padding, pool = self.padding, self.pool
        if not isinstance(padding, str) and any(2 * p > k for p, k in zip(as_tuple(padding, 2), as_tuple(pool, 2))):
            raise ValueError(f"expected padding at most half the pool size ({pool}), received padding {padding}")
        return self


class Pool1dOptions(_HalfPoolPadding):
    pool: PositiveInt = 2
    stride: OptionalPositiveInt = None  # None: the pool size (non-overlapping windows)
    padding: Padding1d = "valid"


class Pool2dOptions(_HalfPoolPadding):
    pool: IntOrPair = 2
    stride: OptionalIntOrPair = None
    padding: Padding = "valid"


class PoolOptions(Pool2dOptions):
    """Rank-dispatching ``maxpool``/``avgpool``: 1-D on ``[C, L]``, 2-D on ``[C, H, W]``."""


class PaddedPool(nn.Module):
    """Pooling after asymmetric 'same' padding (TensorFlow puts the odd pixel right/bottom).

    Max pools pad with -inf; average pools divide each window's sum by the number of
    real values in it.
    """

    def __init__(
        self, kind: str, dims: int, pool: tuple[int, ...], stride: tuple[int, ...], pads: list[tuple[int, int]]
    ) -> None:
        super().__init__()
        self.kind, self.dims, self.pool, self.stride = kind, dims, pool, stride
        self.flat_pads = tuple(p for pair in reversed(pads) for p in pair)  # F.pad wants the last axis first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool_fn = getattr(F, f"{self.kind}_pool{self.dims}d")
        if self.kind == "max":
            return pool_fn(F.pad(x, self.flat_pads, value=float("-inf")), self.pool, self.stride)
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)
        sums = pool_fn(F.pad(x, self.flat_pads), self.pool, self.stride)
        counts = pool_fn(F.pad(ones, self.flat_pads), self.pool, self.stride)
        return sums / counts

    def extra_repr(self) -> str:
        return f"kind={self.kind}, pool={self.pool}, stride={self.stride}, pads={self.flat_pads}"


def _pool(
    kind: str, opts: Pool1dOptions | Pool2dOptions, in_shape: Shape, field: str, dims: int, layer: str
) -> tuple[nn.Module, Shape]:
    layout = "[C, L]" if dims == 1 else "[C, H, W]"
    require_rank(in_shape, (dims + 1,), field, layer, f"a channels-first {layout} input")
    spatial = in_shape[1:]
    pool = as_tuple(opts.pool, dims)
    stride = as_tuple(opts.stride if opts.stride is not None else opts.pool, dims)
    for option, value in (("pool", pool), ("stride", stride)):
        if len(value) != dims:
            raise ShapeError(
                f"Invalid value for `{field}.{option}`: expected {dims} size(s), one per spatial axis of the input "
                f"shape {fmt_shape(in_shape)}, received {list(value)}",
                field=f"{field}.{option}",
            )
    pads = resolve_padding(opts.padding, spatial, pool, stride, (1,) * dims)
    check_window(field, "pool", "pool window", in_shape, pool, (1,) * dims, pads)
    out = tuple(window_out(n, k, s, left + right) for n, k, s, (left, right) in zip(spatial, pool, stride, pads))

    if any(left != right for left, right in pads):
        return PaddedPool(kind, dims, pool, stride, pads), (in_shape[0], *out)
    padding = tuple(left for left, _ in pads)
    if kind == "max":
        module: nn.Module = (nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(pool, stride, padding)
    else:
        module = (nn.AvgPool1d if dims == 1 else nn.AvgPool2d)(pool, stride, padding, count_include_pad=False)
    return module, (in_shape[0], *out)


def _register_windowed(kind: str, long: str) -> None:
    for dims, options in ((1, Pool1dOptions), (2, Pool2dOptions)):
        name = f"{kind}pool{dims}d"

        def target(
            opts: StrictModel, in_shape: Shape, field: str, _dims: int = dims, _name: str = name
        ) -> tuple[nn.Module, Shape]:
            return _pool(kind, opts, in_shape, field, _dims, _name)  # type: ignore[arg-type]

        target.__doc__ = f"{long} pooling over a channels-first input; stride defaults to the pool size."
        aliases = (f"{kind}_pool{dims}d", f"{long}_pooling{dims}d", f"{long}pooling{dims}d", f"{kind}_pooling{dims}d")
        LAYERS.component(name, *aliases, options=options, primary="pool")(target)

    def generic(opts: PoolOptions, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
        if len(in_shape) not in (2, 3):
            raise ShapeError(
                f"Invalid input for `{field}` ({kind}pool): expected a channels-first [C, L] or [C, H, W] input, "
                f"received shape {fmt_shape(in_shape)}",
                field=field,
            )
        return _pool(kind, opts, in_shape, field, len(in_shape) - 1, f"{kind}pool")

    generic.__doc__ = f"{long.capitalize()} pooling, 1-D or 2-D by the input's rank."
    LAYERS.component(
        f"{kind}pool", f"{kind}_pool", f"{long}_pooling", f"{long}pooling", options=PoolOptions, primary="pool"
    )(generic)


_register_windowed("max", "max")
_register_windowed("avg", "average")


class GlobalPool(nn.Module):
    """Reduce every spatial axis: ``[N, C, ...]`` → ``[N, C]``."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(2)
        return flat.amax(dim=-1) if self.kind == "max" else flat.mean(dim=-1)

    def extra_repr(self) -> str:
        return f"kind={self.kind}"


def _register_global(kind: str, long: str) -> None:
    name = f"global_{kind}_pool"

    def target(opts: StrictModel, in_shape: Shape, field: str) -> tuple[nn.Module, Shape]:
        require_rank(in_shape, tuple(range(2, 8)), field, name, "a channels-first [C, L] or [C, H, W] input")
        return GlobalPool(kind), (in_shape[0],)

    target.__doc__ = f"Global {long} pooling: [C, ...] → [C]."
    aliases = [f"global_{long}_pool", f"global_{long}_pooling", f"global{long}pooling"]
    aliases += [f"{a}{dims}d" for a in (name, *aliases) for dims in (1, 2)]
    LAYERS.component(name, *dict.fromkeys(a for a in aliases if a != name))(target)


_register_global("avg", "average")
_register_global("max", "max")
