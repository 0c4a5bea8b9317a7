"""Small formatting helpers shared by the CLI commands."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from modelyard._numbers import number

__all__ = ["console", "metrics_table", "fmt", "kib"]


class _WideConsole(Console):
    """Prints a table at its natural width when the terminal (or a pipe's default 80 columns) is
    narrower: names and ids are never cut to `fashion-ml…`, so `modelyard models | grep` works."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        unbounded = self.options.update(max_width=1_000_000)
        natural = max((self.measure(o, options=unbounded).maximum for o in objects if isinstance(o, Table)), default=0)
        if natural <= self.width:
            super().print(*objects, **kwargs)
            return
        width = self.width  # print(width=...) is capped at the console's width: widen the console itself
        self.width = natural
        try:
            super().print(*objects, **kwargs)
        finally:
            self.width = width


def console() -> Console:
    return _WideConsole(highlight=False, soft_wrap=True)


def fmt(value: Any) -> str:
    """A value as printed to people: a float by the model card's rule (4 significant digits,
    ``127,173`` from 10,000, ``3.2e-05`` for small ones), so a number reads the same in every
    command and in the card; ``--json`` prints the stored value in full."""
    if isinstance(value, float):
        return number(value)
    if value is None:
        return "-"
    return str(value)


def kib(size_bytes: int) -> str:
    """A size as the tables show it: ``12 KiB``."""
    return f"{size_bytes / 1024:.0f} KiB"


def metrics_table(metrics: dict[str, Any], title: str | None = None) -> Table:
    """Scalar metrics as a two-column table (lists such as confusion matrices are left out)."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            table.add_row(key, fmt(value))
    return table
