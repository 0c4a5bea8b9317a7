"""Splits that stay on disk: rows of a memory-mapped array, preprocessed batch by batch.

With ``data.stream: true`` (and a memory-mapped source such as ``npy``) ``prepare`` keeps
each split as a ``StreamedSplit``: the row numbers it owns, its targets (in memory) and
the fitted pipeline. Indexing it with a list of positions reads those rows (in file
order, for the page cache), runs the pipeline and returns one batch ``(x, y)``; the
training loop streams it through a DataLoader with worker processes
(``training.batches.StreamingBatches``), so at most a few batches are in memory at once.

The pipeline is fitted on at most ``FIT_ROWS`` training rows drawn with the seed (a full
pass would read the whole file once more); every split is checked for non-finite values
in chunks before training starts, so bad data fails at once, never mid-epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from modelyard.data.pipeline import Pipeline
from modelyard.errors import DataError

__all__ = ["StreamedSplit", "FIT_ROWS", "CHUNK_ROWS", "check_finite_rows", "is_mapped"]

#: Training rows the preprocessing is fitted on when the data is streamed.
FIT_ROWS = 65_536
#: Rows read at a time when a whole split is scanned (finite check).
CHUNK_ROWS = 8_192


def is_mapped(x: Any) -> bool:
    """True for an array backed by a file (``np.memmap``, or a view of one)."""
    while isinstance(x, np.ndarray):
        if isinstance(x, np.memmap):
            return True
        x = x.base
    return False


def check_finite_rows(x: np.ndarray, rows: np.ndarray | None, where: str) -> None:
    """Raise DataError naming the first sample and feature that is NaN or infinite, reading in chunks."""
    if x.dtype.kind != "f":
        if x.dtype.kind == "O" and x.ndim == 1:  # text, one string per sample: the tokenize step checks it
            return
        if x.dtype.kind not in "biu":
            raise DataError(f"Invalid {where}: expected numeric features, received {x.dtype}", field="data")
        return
    n = len(x) if rows is None else len(rows)
    for start in range(0, n, CHUNK_ROWS):
        chunk = np.asarray(x[start : start + CHUNK_ROWS] if rows is None else x[rows[start : start + CHUNK_ROWS]])
        flat = chunk.reshape(len(chunk), -1)
        finite = np.isfinite(flat)
        if not finite.all():
            i = int(np.argmin(finite.all(axis=1)))
            j = int(np.argmin(finite[i]))
            sample = start + i if rows is None else int(rows[start + i])
            raise DataError(
                f"Invalid {where}: expected finite numbers, received {flat[i, j]} in sample {sample}, feature {j}",
                field="data",
            )


class StreamedSplit(Dataset):
    """One split of a memory-mapped array; ``split[positions]`` is a preprocessed batch.

    ``y`` holds the split's (preprocessed) targets as a tensor, like an in-memory Split's.
    An int position gives one ``(x, y)`` sample, as any map-style Dataset does.
    """

    batched = True  # StreamingBatches and evaluate() ask for whole batches at once

    def __init__(self, source: np.ndarray, rows: np.ndarray, y: torch.Tensor, pipeline: Pipeline) -> None:
        if len(rows) != len(y):
            raise DataError(f"Invalid streamed split: {len(rows)} rows but {len(y)} targets")
        self.source = source
        self.rows = np.asarray(rows, dtype=np.int64)
        self.y = y
        self.pipeline = pipeline

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int | Sequence[int] | np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(index, (int, np.integer)):
            x, y = self[[int(index)]]
            return x[0], y[0]
        positions = np.asarray(index, dtype=np.int64)
        rows = self.rows[positions]
        order = np.argsort(rows, kind="stable")  # read in file order, then put back in batch order
        raw = np.empty((len(rows), *self.source.shape[1:]), dtype=self.source.dtype)
        raw[order] = self.source[rows[order]]
        x = self.pipeline.transform_x(raw)
        tx = torch.from_numpy(x.astype(np.int64) if self.pipeline.integer_ids else x)
        return tx, self.y[torch.from_numpy(positions)]
