"""The anonymisation-step registry, the step protocol and ``drop``.

Anonymisation runs on the raw table, before ``data.prepare`` splits it: it is a transform of
the data set itself (its output is a stored dataset others may read), not a feature step fitted
on a training split and replayed at prediction time. A step first ``check``s the columns it
names against the table as the earlier steps leave it, so a bad config fails before any row is
touched; ``apply`` then transforms a pandas DataFrame and adds its part to the report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from modelyard._validation import StrictModel
from modelyard.components import ComponentRegistry
from modelyard.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ANONYMIZERS", "TableStep", "Columns", "require_columns"]

#: Registry of anonymisation steps; target ``(opts) -> TableStep``.
ANONYMIZERS = ComponentRegistry("anonymisation step")


def require_columns(names: list[str], columns: list[str], field: str, where: str) -> None:
    """A one-line DataError for the first of ``names`` that ``columns`` lacks."""
    for name in names:
        if name not in columns:
            raise DataError(
                f"Invalid value for `{field}`: column {name!r} not found in {where}, which has {len(columns)} "
                f"columns at this step (their names are not repeated: error messages never quote a data file)",
                field=field,
            )


class TableStep:
    """One anonymisation step over a table."""

    def __init__(self, opts: Any) -> None:
        self.opts = opts

    def check(self, columns: list[str], field: str, where: str) -> list[str]:
        """Refuse columns this step names but the table lacks; return the columns after the step."""
        return columns

    def apply(self, frame: pd.DataFrame, report: dict[str, Any]) -> pd.DataFrame:
        return frame


class Columns(StrictModel):
    columns: list[str] = Field(min_length=1)

    @field_validator("columns", mode="before")
    @classmethod
    def _one_name(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value  # `{drop: name}` is `{drop: [name]}`


class _Drop(TableStep):
    def check(self, columns: list[str], field: str, where: str) -> list[str]:
        require_columns(self.opts.columns, columns, f"{field}.columns", where)
        return [c for c in columns if c not in self.opts.columns]

    def apply(self, frame: pd.DataFrame, report: dict[str, Any]) -> pd.DataFrame:
        report.setdefault("dropped", []).extend(self.opts.columns)
        return frame.drop(columns=list(self.opts.columns))


@ANONYMIZERS.component("drop", options=Columns, primary="columns")
def drop(opts: Columns) -> TableStep:
    """Remove columns (direct identifiers such as name or national id)."""
    return _Drop(opts)
