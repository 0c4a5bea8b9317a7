"""Generalisation: a value becomes the coarser group it belongs to.

One ``Generalization`` is one level of a hierarchy: ``width`` (numbers into equal bins, each
shown as its lower edge), ``bins`` (numbers into bins with the given edges), ``truncate`` (keep
the first characters of a code, mask the rest with ``*``: zip 12345 → 123**) or ``map`` (a
categorical hierarchy: each value to its group, unlisted values to ``other``). Numbers stay
numbers unless ``interval`` asks for labels such as ``[30, 40)``, so a model can still train on
the column. The ``generalize`` step applies one; ``k_anonymity`` climbs a list of them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, field_validator, model_validator

from modelyard._validation import StrictModel
from modelyard.errors import DataError
from modelyard.privacy.steps import ANONYMIZERS, TableStep, require_columns

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Generalization", "GeneralizeOptions", "SUPPRESSED", "generalized"]

#: The top of every hierarchy: the value says nothing.
SUPPRESSED = "*"
_KINDS = ("width", "bins", "truncate", "map")


class Generalization(StrictModel):
    width: float | None = Field(None, gt=0)
    bins: list[float] | None = Field(None, min_length=2)
    truncate: int | None = Field(None, ge=0)
    map: dict[str, str] | None = Field(None, min_length=1)
    other: str = SUPPRESSED  # the group of values that `map` does not list
    interval: bool = False  # numbers: a label "[30, 40)" instead of the lower edge 30

    @field_validator("bins")
    @classmethod
    def _increasing(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (
            any(not math.isfinite(v) for v in value) or any(b <= a for a, b in zip(value, value[1:]))
        ):
            raise ValueError(
                f"expected finite, strictly increasing bin edges such as [0, 18, 65, 120], received {value}"
            )
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Generalization:
        given = [k for k in _KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"expected exactly one of {', '.join(_KINDS)} (for example {{width: 10}}), received "
                f"{', '.join(given) if given else 'none'}"
            )
        return self

    def describe(self) -> str:
        if self.width is not None:
            return f"bins of width {self.width:g}"
        if self.bins is not None:
            return f"bins {[float(b) for b in self.bins]}"
        if self.truncate is not None:
            return f"first {self.truncate} characters"
        return f"map of {len(self.map or {})} values, others {self.other!r}"


def generalized(series: pd.Series, how: Generalization | None, field: str) -> pd.Series:
    """``series`` generalised by ``how`` (None: suppressed entirely); missing values stay missing."""
    import pandas as pd

    if how is None:
        return pd.Series(SUPPRESSED, index=series.index, dtype=object)
    if how.truncate is not None:
        n = how.truncate
        text = series.map(lambda v: v if _missing(v) else str(v)[:n] + SUPPRESSED * max(0, len(str(v)) - n))
        return text.astype(object)
    if how.map is not None:
        groups = how.map
        return series.map(lambda v: v if _missing(v) else groups.get(str(v), how.other)).astype(object)
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna()
    if bad.any():
        raise DataError(
            f"Invalid value for `{field}`: bins need numbers, but column {series.name!r} holds {int(bad.sum())} "
            f"values that are not (generalise text with truncate or map)",
            field=field,
        )
    x = values.to_numpy(dtype=np.float64)
    if how.width is not None:
        lower = np.floor(x / how.width) * how.width
        upper = lower + how.width
    else:
        edges = np.asarray(how.bins, dtype=np.float64)
        present = ~np.isnan(x)
        outside = present & ((x < edges[0]) | (x > edges[-1]))
        if outside.any():
            raise DataError(
                f"Invalid value for `{field}`: {int(outside.sum())} values of column {series.name!r} lie outside "
                f"the bins [{edges[0]:g}, {edges[-1]:g}]; widen the first or last edge",
                field=field,
            )
        index = np.clip(np.searchsorted(edges, np.where(present, x, edges[0]), side="right") - 1, 0, len(edges) - 2)
        lower = np.where(present, edges[index], np.nan)
        upper = np.where(present, edges[index + 1], np.nan)
    if how.interval:
        labels = [None if math.isnan(lo) else f"[{lo:g}, {hi:g})" for lo, hi in zip(lower, upper)]
        return pd.Series(labels, index=series.index, dtype=object)
    return pd.Series(lower, index=series.index)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class GeneralizeOptions(Generalization):
    column: str = Field(min_length=1)


class _Generalize(TableStep):
    def check(self, columns: list[str], field: str, where: str) -> list[str]:
        require_columns([self.opts.column], columns, f"{field}.column", where)
        self.field = field
        return columns

    def apply(self, frame: pd.DataFrame, report: dict[str, Any]) -> pd.DataFrame:
        out = frame.copy()
        out[self.opts.column] = generalized(frame[self.opts.column], self.opts, self.field)
        report.setdefault("generalized", {})[self.opts.column] = self.opts.describe()
        return out


@ANONYMIZERS.component("generalize", "generalise", options=GeneralizeOptions, primary="column")
def generalize(opts: GeneralizeOptions) -> TableStep:
    """Replace a column's values by their group: width/bins for numbers, truncate or map for codes."""
    return _Generalize(opts)
