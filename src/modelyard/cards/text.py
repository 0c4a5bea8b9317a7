"""How a card writes values: numbers rounded for people, tables in Markdown, never a Python repr."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from modelyard._numbers import SIGNIFICANT, number

__all__ = ["number", "rounded", "cell", "flatten", "table"]


def rounded(value: Any) -> Any:
    """``value`` with every float rounded to 4 significant digits (for the YAML front matter)."""
    if isinstance(value, float) and math.isfinite(value):
        return float(f"{value:.{SIGNIFICANT}g}")
    if isinstance(value, Mapping):
        return {str(k): rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def cell(value: Any) -> str:
    """One table cell: numbers rounded, lists joined, mappings as ``key: value``; pipes escaped."""
    if value is None:
        text = "-"
    elif isinstance(value, (bool, int, float)):
        text = number(value)
    elif isinstance(value, Mapping):
        text = "; ".join(f"{k}: {cell(v)}" for k, v in value.items()) or "-"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(cell(v) for v in value) or "-"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def flatten(value: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested mappings as ``(dotted.key, leaf)`` rows: ``{"latency_ms": {"torch": {"1": 0.05}}}``."""
    rows: list[tuple[str, Any]] = []
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            rows += flatten(item, f"{name}.")
        else:
            rows.append((name, item))
    return rows


def table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A Markdown table; a header cell is written as is, every other cell through ``cell``."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines
