"""The live progress bar: epoch i/N, step, loss, metrics, samples/s and ETA (rich).

The loop calls ``update`` only every ``log_every`` steps, with numbers it has already
read from the device, and the bar redraws only then (``auto_refresh=False``: no
background thread competing with the training threads for the CPU).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from modelyard._numbers import number

__all__ = ["ProgressBar", "format_metrics"]


def format_metrics(metrics: dict[str, Any], skip: tuple[str, ...] = ("epoch",)) -> str:
    """``loss 0.1234  accuracy 0.9500 ...`` for the scalar entries of ``metrics``."""
    parts = []
    for key, value in metrics.items():
        if key in skip or isinstance(value, (list, dict)) or value is None:
            continue
        parts.append(f"{key} {number(value)}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


class ProgressBar:
    """One bar per epoch; inert (every method returns at once) when disabled."""

    def __init__(self, *, epochs: int, enabled: bool, console: Console | None = None) -> None:
        console = console or Console(stderr=True)
        self.enabled = enabled and console.is_terminal
        self.epochs = epochs
        self._progress: Progress | None = None
        self._task: Any = None
        self._start = 0.0
        if self.enabled:
            self._progress = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
                auto_refresh=False,
                transient=True,
            )
            self._progress.start()

    def start_epoch(self, epoch: int, steps: int) -> None:
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._start = time.perf_counter()
        self._task = self._progress.add_task("", total=steps, epoch=epoch, epochs=self.epochs, info="")
        self._progress.refresh()

    def update(self, step: int, samples: int, loss: float) -> None:
        """Called every ``log_every`` steps with the running mean loss of the epoch."""
        if self._progress is None:
            return
        rate = samples / max(time.perf_counter() - self._start, 1e-9)
        self._progress.update(self._task, completed=step, info=f"loss {loss:.4g}  {rate:,.0f} samples/s")
        self._progress.refresh()

    def end_epoch(self, metrics: dict[str, Any]) -> None:
        """Print the epoch's summary line above the bar."""
        if self._progress is None:
            return
        line = format_metrics({k: v for k, v in metrics.items() if k not in ("time_s", "samples_per_s")})
        self._progress.console.print(
            f"epoch {metrics['epoch']}/{self.epochs}  {line}  {metrics['time_s']:.2f}s  "
            f"{metrics['samples_per_s']:,.0f} samples/s"
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
