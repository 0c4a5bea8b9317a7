"""Small formatting helpers shared by the CLI commands."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["console", "metrics_table", "fmt"]


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def metrics_table(metrics: dict[str, Any], title: str | None = None) -> Table:
    """Scalar metrics as a two-column table (lists such as confusion matrices are left out)."""
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            table.add_row(key, fmt(value))
    return table
