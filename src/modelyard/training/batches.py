"""Mini-batches for the loop: by index from tensors on the device, or streamed.

The fast path keeps the whole split as contiguous tensors on the training device and cuts
batches with one gather per batch from a ``torch.randperm`` permutation drawn from a
seeded generator: no DataLoader, no per-sample Python, no host→device copy per step.
Data that does not fit in memory comes as a ``torch.utils.data.Dataset`` and streams
through a DataLoader with worker processes instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from modelyard.errors import DataError
from modelyard.nn.masking import cut_padding

__all__ = [
    "sequence_lengths",
    "InMemoryBatches",
    "PoissonBatches",
    "StreamingBatches",
    "dataset_loader",
    "is_tensor_split",
    "split_size",
    "check_split",
]

Batch = tuple[torch.Tensor, torch.Tensor]


def is_tensor_split(split: Any) -> bool:
    """True for a split with ``.x``/``.y`` tensors (the fast path), False for a Dataset."""
    return isinstance(getattr(split, "x", None), torch.Tensor) and isinstance(getattr(split, "y", None), torch.Tensor)


def split_size(split: Any) -> int:
    return int(split.x.shape[0]) if is_tensor_split(split) else len(split)


def check_split(split: Any, name: str) -> None:
    """Refuse a split that cannot be trained on, before the first step."""
    if is_tensor_split(split):
        if split.x.shape[0] != split.y.shape[0]:
            raise DataError(f"Invalid {name} split: {split.x.shape[0]} samples (x) but {split.y.shape[0]} targets (y)")
        if split.x.shape[0] == 0:
            raise DataError(f"Invalid {name} split: expected at least 1 sample, received 0")
        return
    if not isinstance(split, Dataset):
        raise DataError(
            f"Invalid {name} split: expected an object with tensors .x and .y or a torch Dataset, "
            f"received {type(split).__name__}"
        )
    if len(split) == 0:  # type: ignore[arg-type]
        raise DataError(f"Invalid {name} split: expected at least 1 sample, received 0")


class InMemoryBatches:
    """Batches of device-resident tensors in a fresh seeded permutation each epoch."""

    kind = "in-memory-index"

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator,
        device: torch.device,
        channels_last: bool = False,
        pad_id: int | None = None,
        group_by_length: bool = False,
        lengths: torch.Tensor | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        # One copy to the device at the start; non_blocking overlaps it with setup work.
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        self.y = y.to(device, non_blocking=True).contiguous()
        # Rows are gathered with index_select (2x faster than x[idx] on a CPU); a
        # channels-last batch is gathered from the NHWC view of the same memory, which
        # keeps it channels-last (index_select on the NCHW view would not).
        self._nhwc = self.x.permute(0, 2, 3, 1) if channels_last and self.x.ndim == 4 else None
        self.n = int(x.shape[0])
        self.batch_size = min(batch_size, self.n)
        self.shuffle = shuffle
        self.generator = generator  # a CPU generator: the same permutation on every device
        self.device = device
        # (rank, workers) of data-parallel training: every worker draws the same permutation and
        # takes every workers-th sample of each global batch (DistributedSampler's striding), so
        # the workers' batches of one step are together the batch one process would take.
        self.rank, self.workers = shard
        # Token ids right-padded with pad_id, for a network that takes any length: each batch is
        # cut to its longest real sequence (no work on columns of pads). Lengths are counted once.
        self._pad_id = pad_id
        # ``lengths`` given: rows that are no longer token ids (a frozen encoder's vectors) grouped
        # by the lengths of the queries they came from, in the order the ids would have been.
        self.lengths = (
            lengths if lengths is not None else sequence_lengths(self.x, pad_id) if pad_id is not None else None
        )
        self.group_by_length = group_by_length and self.lengths is not None
        if self.lengths is not None:
            self.kind = (
                "in-memory-index"
                + (", cut to the longest sequence" if pad_id is not None else "")
                + (", grouped by length" if self.group_by_length else "")
            )

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        for x, y in self._batches():
            yield self._cut(x), y

    def local_sizes(self) -> list[int]:
        """Samples this worker takes at each step (every step's global batch cut by ``shard``)."""
        sizes = [min(self.batch_size, self.n - start) for start in range(0, self.n, self.batch_size)]
        return [len(range(self.rank, size, self.workers)) for size in sizes]

    def _take(self, x: torch.Tensor, y: torch.Tensor) -> Batch:
        if self.workers == 1:
            return x, y
        return x[self.rank :: self.workers], y[self.rank :: self.workers]

    def _batches(self) -> Iterator[Batch]:
        if not self.shuffle:
            for start in range(0, self.n, self.batch_size):  # views, no copy
                yield self._take(self.x[start : start + self.batch_size], self.y[start : start + self.batch_size])
            return
        if len(self) == 1:
            # Full-batch gradient descent: the order inside the one batch changes nothing
            # but the rounding of a sum, so skip the gather (a copy of the whole set).
            yield self._take(self.x, self.y)
            return
        perm = torch.randperm(self.n, generator=self.generator)
        starts = list(range(0, self.n, self.batch_size))
        if self.group_by_length:
            perm, starts = self._grouped(perm)
        perm = perm.to(self.device, non_blocking=True)
        for start in starts:
            idx = perm[start : start + self.batch_size][self.rank :: self.workers]
            yield self._gather(idx), self.y.index_select(0, idx)

    def _grouped(self, perm: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """Length-grouped sampling (Hugging Face's ``group_by_length``): within each run of
        ``GROUP_BATCHES`` shuffled batches, samples are sorted longest first, then the batches
        are visited in a shuffled order, so a batch holds sequences of similar length."""
        assert self.lengths is not None
        span = self.batch_size * GROUP_BATCHES
        chunks = [perm[i : i + span] for i in range(0, self.n, span)]
        lengths = self.lengths.cpu()
        ordered = torch.cat([c[torch.argsort(lengths[c], descending=True, stable=True)] for c in chunks])
        starts = list(range(0, self.n, self.batch_size))
        order = torch.randperm(len(starts), generator=self.generator).tolist()
        return ordered, [starts[i] for i in order]

    def _cut(self, x: torch.Tensor) -> torch.Tensor:
        """The batch cut to its longest real sequence (right padding only)."""
        return x if self._pad_id is None else cut_padding(x, self._pad_id)

    @property
    def pad_id(self) -> int | None:
        return self._pad_id

    def _gather(self, idx: torch.Tensor) -> torch.Tensor:
        if self._nhwc is None:
            return self.x.index_select(0, idx)
        return self._nhwc.index_select(0, idx).permute(0, 3, 1, 2)  # NHWC rows, seen as NCHW


class PoissonBatches:
    """DP-SGD's sampling (Abadi et al. 2016; Opacus's ``UniformWithReplacementSampler``): at each of
    ``ceil(N / batch_size)`` steps every sample joins the batch on its own with probability
    ``sample_rate = 1 / steps``, so batch sizes vary (binomial, mean ``N * sample_rate``).

    The privacy accountant's amplification by subsampling assumes exactly this; a shuffled
    fixed-size batch would make the reported epsilon wrong. A batch may be empty: the step
    still happens (noise only), as the accounting counts it.
    """

    kind = "in-memory-poisson"
    variable = True  # batch sizes differ from step to step: the loop weights each by its own size

    def __init__(
        self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> None:
        self.x = x.to(device, non_blocking=True).contiguous()
        self.y = y.to(device, non_blocking=True).contiguous()
        self.n = int(x.shape[0])
        self.steps = math.ceil(self.n / min(batch_size, self.n))
        self.sample_rate = 1.0 / self.steps
        self.batch_size = min(batch_size, self.n)  # the expected size, rounded up
        self.generator = generator  # CPU: the same batches on every device
        self.device = device

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Batch]:
        for _ in range(self.steps):
            chosen = torch.rand(self.n, generator=self.generator) < self.sample_rate
            idx = chosen.nonzero().squeeze(1).to(self.device, non_blocking=True)
            yield self.x.index_select(0, idx), self.y.index_select(0, idx)


#: Batches per length-sorted group (``group_by_length``): larger groups pad less, smaller ones
#: keep more of the shuffle's randomness (Hugging Face sorts within 50 batches as well).
GROUP_BATCHES = 50


def sequence_lengths(x: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Per row, one past the last position that is not ``pad_id`` (0 for a row of pads)."""
    real = x != pad_id
    positions = torch.arange(1, x.shape[1] + 1, device=x.device)
    return (real * positions).amax(dim=1) if x.ndim == 2 and x.shape[1] else torch.zeros(len(x), dtype=torch.long)


def dataset_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None = None,
    workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader over ``dataset``; one that reads whole batches (``dataset.batched``, such as
    a memory-mapped ``StreamedSplit``) is indexed with each batch's positions at once instead
    of sample by sample (torch's documented "automatic batching disabled" form)."""
    # Not persistent: each epoch's iterator then draws its seeds from ``generator`` the same
    # way in a resumed run as in an uninterrupted one (exact resume).
    common = {"num_workers": workers, "pin_memory": pin_memory, "persistent_workers": False}
    if getattr(dataset, "batched", False):
        order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)  # type: ignore[arg-type]
        return DataLoader(
            dataset,
            sampler=BatchSampler(order, batch_size, drop_last=False),
            batch_size=None,
            generator=generator,
            **common,
        )
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=False, **common)


class StreamingBatches:
    """A DataLoader over a Dataset (data larger than memory), seeded and with workers.

    A ``StreamedSplit`` (``data.stream: true``) is read a whole batch at a time by the workers.
    """

    kind = "dataloader"

    def __init__(
        self,
        dataset: Dataset,
        *,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator,
        device: torch.device,
        workers: int,
        channels_last: bool = False,
    ) -> None:
        self.device = device
        self.channels_last = channels_last
        self.batch_size = min(batch_size, len(dataset))  # type: ignore[arg-type]
        self.loader = dataset_loader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            workers=workers,
            pin_memory=device.type == "cuda",
        )

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        for x, y in self.loader:
            x = x.to(self.device, non_blocking=True)
            if self.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, y.to(self.device, non_blocking=True)
