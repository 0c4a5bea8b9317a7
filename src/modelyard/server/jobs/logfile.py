"""The per-job log file: what a worker did in every attempt, appended, timestamped.

``GET /v1/jobs/{id}/logs`` and the ``log`` events read it by byte offset, so lines are
only ever appended. While a job runs, records of the ``modelyard`` loggers (e.g. "resuming
after epoch 3") go to the same file.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from modelyard.training.progress import format_metrics

__all__ = ["JobLog", "read_log", "append_line"]

_MAX_CHUNK = 1 << 20


class JobLog:
    """Append-only, line-buffered log of one job (a context manager)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None
        self._handler: logging.Handler | None = None
        self._level = logging.NOTSET

    def __enter__(self) -> JobLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8", buffering=1)
        self._handler = logging.StreamHandler(self._file)
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self._handler.setLevel(logging.INFO)
        logger = logging.getLogger("modelyard")
        self._level = logger.level
        if logger.getEffectiveLevel() > logging.INFO:  # the job log wants INFO whatever the console shows
            logger.setLevel(logging.INFO)
        logger.addHandler(self._handler)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._handler is not None:
            logger = logging.getLogger("modelyard")
            logger.removeHandler(self._handler)
            logger.setLevel(self._level)
        if self._file is not None:
            self._file.close()
        self._file = self._handler = None

    def line(self, text: str) -> None:
        if self._file is not None:
            self._file.write(_stamped(text))

    def epoch(self, epoch: int, epochs: int, metrics: dict[str, Any]) -> None:
        shown = format_metrics({k: v for k, v in metrics.items() if k not in ("epoch", "time_s", "samples_per_s")})
        seconds = metrics.get("time_s")
        self.line(f"epoch {epoch}/{epochs}  {shown}" + (f"  {seconds:.2f}s" if isinstance(seconds, float) else ""))


def _stamped(text: str) -> str:
    return f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} {text}\n"


def append_line(path: Path, text: str) -> None:
    """One line from outside the worker (the reaper saying why an attempt ended)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(_stamped(text))


def read_log(path: Path, offset: int = 0, limit: int = _MAX_CHUNK) -> tuple[str, int]:
    """Text from byte ``offset`` (whole lines only, at most ``limit`` bytes) and the next offset."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, offset))
            data = fh.read(limit)
    except FileNotFoundError:
        return "", offset
    end = data.rfind(b"\n")
    if end >= 0:
        data = data[: end + 1]  # a line still being written waits for the next read
    elif len(data) < limit:
        data = b""
    return data.decode("utf-8", errors="replace"), offset + len(data)
