"""Deterministic sample selection: ``limit`` subsets and train/held-out splits.

Everything is drawn from the spec's seed, so one seed always gives the same samples in
the same splits and another seed gives different ones. Indices are returned sorted, so
the kept samples stay in the source's order.
"""

from __future__ import annotations

import math

import numpy as np

from modelyard.errors import DataError

__all__ = ["subset", "holdout", "derived_seed"]


def derived_seed(seed: int, purpose: str) -> int:
    """An independent 32-bit seed for one purpose (limit, test split, validation split)."""
    tag = int.from_bytes(purpose.encode()[:8].ljust(8, b"\0"), "little")
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF, tag]).generate_state(1)[0])


def subset(n: int, k: int, seed: int) -> np.ndarray:
    """``k`` of ``n`` indices drawn without replacement (all of them when k >= n)."""
    if k >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=k, replace=False))


def holdout(
    n: int,
    fraction: float,
    *,
    seed: int,
    labels: np.ndarray | None = None,
    what: str = "test",
    field: str = "data.test",
) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) sorted indices; ``ceil(fraction * n)`` samples are held out.

    With class ``labels`` the split is stratified (each class held out in proportion to
    its size, largest remainders rounded up) when every class has at least 2 samples
    and both parts have room for every class, as scikit-learn's StratifiedShuffleSplit
    requires; otherwise it is a plain random split. Plain numpy: importing scikit-learn
    for this would cost seconds.
    """
    held = math.ceil(fraction * n)
    if held < 1 or n - held < 1:
        raise DataError(
            f"Invalid value for `{field}`: holding out {fraction:g} of {n} sample(s) for {what} leaves "
            f"{n - held} for training and {held} for {what}; expected at least 1 in each. Use more data "
            f"(`data.limit`?) or a different fraction",
            field=field,
        )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    chosen = perm[:held]
    if labels is not None:
        classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if counts.min() >= 2 and held >= len(classes) and n - held >= len(classes):
            exact = counts * held / n
            quota = np.floor(exact).astype(np.int64)
            # Largest remainders get the leftover places; random tie-breaks avoid favouring low labels.
            order = np.lexsort((rng.random(len(classes)), -(exact - quota)))
            quota[order[: held - int(quota.sum())]] += 1
            by_class = perm[np.argsort(inverse[perm], kind="stable")]  # shuffled within each class
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
            chosen = np.concatenate([by_class[s : s + q] for s, q in zip(starts, quota)])
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)
