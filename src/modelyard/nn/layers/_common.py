"""The layer registry and what its layer files share: option types, the one-line
ShapeError messages and the activation wrapper.

A layer target is ``(opts, in_shape, field) -> (nn.Module, out_shape)``; shapes exclude
the batch axis and are computed arithmetically, so a bad spec fails before any tensor
exists.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator
from torch import nn

from modelyard.components import ComponentRegistry
from modelyard.errors import ShapeError

__all__ = [
    "LAYERS",
    "Shape",
    "PositiveInt",
    "OptionalPositiveInt",
    "IntOrPair",
    "OptionalIntOrPair",
    "Padding",
    "Padding1d",
    "fmt_shape",
    "shape_error",
    "require_rank",
    "with_activation",
    "as_tuple",
]

LAYERS = ComponentRegistry("layer")

Shape = tuple[int, ...]


def _sizes(value: Any, *, minimum: int, pair: bool, words: tuple[str, ...] = (), optional: bool = False) -> Any:
    """One clear error for int/pair/word unions instead of one per union branch."""
    if value is None and optional:
        return None
    if isinstance(value, str) and value.strip().lower() in words:
        return value.strip().lower()
    is_seq = pair and isinstance(value, (list, tuple))
    items = list(value) if is_seq else [value]
    ok = len(items) == (2 if is_seq else 1) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in items
    )
    if not ok:
        forms = [*(repr(w) for w in words), f"an integer >= {minimum}"] + (
            ["a pair of them such as [3, 3]"] if pair else []
        )
        raise ValueError(f"expected {' or '.join(forms)}, received {value!r}")
    return tuple(items) if is_seq else value


def _check(minimum: int, *, pair: bool, words: tuple[str, ...] = (), optional: bool = False) -> BeforeValidator:
    return BeforeValidator(lambda v: _sizes(v, minimum=minimum, pair=pair, words=words, optional=optional))


PositiveInt = Annotated[int, _check(1, pair=False)]
OptionalPositiveInt = Annotated[int | None, _check(1, pair=False, optional=True)]
IntOrPair = Annotated[int | tuple[int, int], _check(1, pair=True)]
OptionalIntOrPair = Annotated[int | tuple[int, int] | None, _check(1, pair=True, optional=True)]
# "valid": no padding; "same": output size ceil(input / stride) (TensorFlow's rule,
# the extra pixel of an odd total goes right/bottom); an int or pair: zeros on both sides.
Padding = Annotated[Literal["valid", "same"] | int | tuple[int, int], _check(0, pair=True, words=("valid", "same"))]
Padding1d = Annotated[Literal["valid", "same"] | int, _check(0, pair=False, words=("valid", "same"))]


def fmt_shape(shape: tuple[int, ...] | list[int]) -> str:
    """``(1, 28, 28)`` → ``[1, 28, 28]``, the way a spec writes shapes."""
    return "[" + ", ".join(str(s) for s in shape) + "]"


def shape_error(field: str, layer: str, expected: str, in_shape: Shape, hint: str = "") -> ShapeError:
    """``Invalid input for `model.layers[3]` (conv2d): expected ..., received shape [784]; hint``."""
    msg = f"Invalid input for `{field}` ({layer}): expected {expected}, received shape {fmt_shape(in_shape)}"
    return ShapeError(msg + (f"; {hint}" if hint else ""), field=field)


def require_rank(
    in_shape: Shape, ranks: tuple[int, ...], field: str, layer: str, expected: str, hint: str = ""
) -> None:
    if len(in_shape) not in ranks:
        raise shape_error(field, layer, expected, in_shape, hint)


def as_tuple(value: int | tuple[int, ...] | list[int], n: int) -> tuple[int, ...]:
    """An int or an n-sequence as an n-tuple."""
    if isinstance(value, int):
        return (value,) * n
    return tuple(value)


def with_activation(
    name: str, core: nn.Module, activation: nn.Module | None, pad: nn.Module | None = None
) -> nn.Sequential:
    """``core`` (named ``name``) optionally preceded by padding and followed by an activation.

    The parameter names (``<name>.weight``) do not depend on the activation, so weights
    saved from a network whose final softmax was folded into the loss load into one
    that applies it, and the other way round.
    """
    parts: list[tuple[str, nn.Module]] = []
    if pad is not None:
        parts.append(("pad", pad))
    parts.append((name, core))
    if activation is not None:
        parts.append(("activation", activation))
    return nn.Sequential(OrderedDict(parts))
