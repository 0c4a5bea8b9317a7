"""The search space of a tune: ``PATH=loguniform(a,b)`` and its kin, parsed into dimensions.

A dimension is one dotted spec path (the paths of ``modelyard train --set``) and a distribution:

- ``uniform(LOW,HIGH)`` and ``loguniform(LOW,HIGH)``: floats (``loguniform`` needs ``0 < LOW``);
- ``int(LOW,HIGH)``: integers from LOW to HIGH inclusive, ``int(LOW,HIGH,log)`` on a log scale;
- ``choice(A,B,...)``: one of the listed values, each read as YAML (``64``, ``relu``, ``true``).

Parsing is pure (no Optuna); ``suggest`` asks an Optuna trial for one value per dimension.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from modelyard.errors import SpecError
from modelyard.registry import closest

__all__ = ["Dimension", "parse_search", "parse_dimension", "suggest", "grid", "first_values", "split_item", "FORMS"]

Kind = Literal["uniform", "loguniform", "int", "choice"]

#: The expected form of each distribution, as error messages print it.
FORMS: dict[str, str] = {
    "uniform": "uniform(LOW,HIGH) with LOW < HIGH",
    "loguniform": "loguniform(LOW,HIGH) with 0 < LOW < HIGH",
    "int": "int(LOW,HIGH) or int(LOW,HIGH,log) with integers LOW < HIGH",
    "choice": "choice(A,B,...) with at least one value",
}
_CALL = re.compile(r"^\s*([A-Za-z_]+)\s*\((.*)\)\s*$", re.S)


@dataclass(frozen=True)
class Dimension:
    """One searched spec path and its distribution."""

    path: str
    kind: Kind
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def describe(self) -> str:
        if self.kind == "choice":
            return f"choice({','.join(_text(c) for c in self.choices)})"
        if self.kind == "int":
            return f"int({self.low},{self.high}{',log' if self.log else ''})"
        return f"{self.kind}({self.low:g},{self.high:g})"

    def values(self) -> list[Any]:
        """Every value of a discrete dimension (what grid search walks)."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))  # type: ignore[arg-type]
        raise SpecError(
            f"Invalid value for `--search {self.path}={self.describe()}`: grid search needs choice(...) or int(...) "
            f"for every path, received a continuous {self.kind} range",
            field="--search",
        )


def _text(value: Any) -> str:
    return (
        value
        if isinstance(value, str)
        else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...")
    )


def _bad(item: str, kind: str | None, received: str) -> SpecError:
    expected = FORMS[kind] if kind in FORMS else "one of " + ", ".join(v.split(" with")[0] for v in FORMS.values())
    return SpecError(f"Invalid value for `--search {item}`: expected {expected}, received {received}", field="--search")


def _number(item: str, kind: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(item, kind, f"{text.strip()!r}, not a number") from None
    if not math.isfinite(value):
        raise _bad(item, kind, f"{text.strip()!r}, not a finite number")
    return value


def _split_args(body: str) -> list[str]:
    """Comma-separated arguments; commas inside brackets or quotes stay (``choice([1,2],[3])``)."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(body):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return [p.strip() for p in parts]


def parse_dimension(path: str, expression: str) -> Dimension:
    """``path`` and its distribution ``expression`` (``loguniform(1e-4,1e-1)``) → a Dimension."""
    item = f"{path}={expression}"
    path = path.strip()
    if not path or any(not k for k in path.split(".")):
        raise SpecError(
            f"Invalid value for `--search {item}`: expected PATH=DISTRIBUTION with a dotted spec path such as "
            f"train.lr, received path {path!r}",
            field="--search",
        )
    match = _CALL.match(str(expression))
    if match is None:
        raise _bad(item, None, repr(str(expression).strip()))
    kind, body = match.group(1).lower(), match.group(2)
    if kind not in FORMS:
        near = closest(kind, list(FORMS))
        hint = f"; did you mean {near!r}?" if near else ""
        raise _bad(item, None, f"{match.group(1)!r}{hint}")
    args = _split_args(body) if body.strip() else []
    if kind == "choice":
        if not args:
            raise _bad(item, kind, "no values (an empty choice)")
        try:
            choices = tuple(yaml.safe_load(a) for a in args)
        except yaml.YAMLError:
            raise _bad(item, kind, f"values that are not YAML: {body.strip()!r}") from None
        odd = next((c for c in choices if c is not None and not isinstance(c, (bool, int, float, str))), None)
        if odd is not None:
            raise _bad(item, kind, f"{_text(odd)}, not a single number, word, true/false or null")
        if len(set(map(repr, choices))) != len(choices):
            raise _bad(item, kind, f"a value listed twice: {body.strip()!r}")
        return Dimension(path, "choice", choices=choices)
    log = kind == "loguniform"
    if kind == "int" and len(args) == 3 and args[2].lower() == "log":
        args, log = args[:2], True
    if len(args) != 2:
        raise _bad(item, kind, f"{len(args)} argument{'s' if len(args) != 1 else ''}")
    low, high = (_number(item, kind, a) for a in args)
    if kind == "int":
        if low != int(low) or high != int(high):
            raise _bad(item, kind, f"a bound that is not an integer: {args[0]}, {args[1]}")
        low, high = int(low), int(high)
    if not low < high:
        raise _bad(item, kind, f"an empty range: LOW {args[0]} is not below HIGH {args[1]}")
    if log and low <= 0:
        raise _bad(item, kind, f"LOW {args[0]}, which a log scale cannot start at (it needs LOW > 0)")
    return Dimension(path, kind, low=low, high=high, log=log)  # type: ignore[arg-type]


def parse_search(items: Iterable[str] | Mapping[str, Any]) -> list[Dimension]:
    """``--search PATH=DIST`` items (or the ``tune.search`` mapping) → dimensions; a path given twice is refused."""
    pairs: list[tuple[str, str]] = []
    if isinstance(items, Mapping):
        for path, expression in items.items():
            if isinstance(expression, list):  # tune: {search: {model.layers.0.units: [64, 128]}} is a choice
                expression = f"choice({','.join(_text(v) for v in expression)})"
            pairs.append((str(path), str(expression)))
    else:
        pairs = [split_item(item) for item in items]
    dims: list[Dimension] = []
    for path, expression in pairs:
        dim = parse_dimension(path, expression)
        if any(d.path == dim.path for d in dims):
            raise SpecError(f"Invalid value for `--search {dim.path}`: the path is searched twice", field="--search")
        dims.append(dim)
    if not dims:
        raise SpecError(
            "Missing search space: expected at least one --search PATH=DISTRIBUTION (or tune.search in the spec), "
            "received none",
            field="--search",
        )
    return dims


def split_item(item: str) -> tuple[str, str]:
    """``PATH=DISTRIBUTION`` → (path, distribution)."""
    if "=" not in item:
        raise SpecError(
            f"Invalid value for `--search {item}`: expected PATH=DISTRIBUTION such as "
            f"train.lr=loguniform(1e-4,1e-1), received no '='",
            field="--search",
        )
    path, _, expression = item.partition("=")
    return path.strip(), expression


def suggest(trial: Any, dims: Iterable[Dimension]) -> dict[str, Any]:
    """One value per dimension from an Optuna trial (named by its path, so the study shows spec paths)."""
    params: dict[str, Any] = {}
    for d in dims:
        if d.kind == "choice":
            params[d.path] = trial.suggest_categorical(d.path, list(d.choices))
        elif d.kind == "int":
            params[d.path] = trial.suggest_int(d.path, int(d.low), int(d.high), log=d.log)  # type: ignore[arg-type]
        else:
            params[d.path] = trial.suggest_float(d.path, float(d.low), float(d.high), log=d.log)  # type: ignore[arg-type]
    return params


def grid(dims: Iterable[Dimension]) -> dict[str, list[Any]]:
    """The search space of Optuna's GridSampler: every value of every (discrete) dimension."""
    return {d.path: d.values() for d in dims}


def first_values(dims: Iterable[Dimension]) -> dict[str, Any]:
    """A value of each dimension (its low end or first choice): checks the paths before any trial runs."""
    return {d.path: d.choices[0] if d.kind == "choice" else d.low for d in dims}
