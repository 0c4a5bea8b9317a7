"""How a number is written for people, in one place: the CLI's tables and lines (cli/_fmt.fmt),
the training progress lines and the model card (cards/text) all round the same way. A leaf
module (standard library only) so the CLI can use it without importing the card's yaml."""

from __future__ import annotations

import math

__all__ = ["SIGNIFICANT", "number"]

SIGNIFICANT = 4
_WHOLE_FROM = 1e4  # 127173.02 reads better as 127,173 than as 1.272e+05


def number(value: int | float) -> str:
    """``0.9166666`` → ``0.9167``, ``127173.02`` → ``127,173``, ``2410`` → ``2,410``, ``3.2e-05`` stays."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)  # nan, inf, -inf
    if abs(value) >= _WHOLE_FROM:
        return f"{round(value):,}"
    return f"{value:.{SIGNIFICANT}g}"
