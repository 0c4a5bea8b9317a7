"""Split a training set's sample indices among simulated clients."""

from __future__ import annotations

import numpy as np
import torch

from modelyard.errors import SpecError
from modelyard.federated.spec import PartitionSpec

__all__ = ["partition"]

# Dirichlet draws that leave a client empty are redrawn (as Flower Datasets' DirichletPartitioner does).
_DIRICHLET_TRIES = 100


def partition(
    y: torch.Tensor, spec: PartitionSpec, clients: int, *, seed: int, groups: np.ndarray | None = None
) -> list[torch.Tensor]:
    """Disjoint index tensors, one per client, covering every sample; each client gets at least one.

    ``groups``: each sample's group name (``Prepared.train_groups``), which ``column`` splits by.
    """
    n = int(y.shape[0])
    if spec.type == "column":
        return _by_column(spec, groups, clients)
    if clients > n:
        raise SpecError(
            f"Invalid value for `federated.clients`: expected at most the {n} training samples, received {clients}",
            field="federated.clients",
        )
    rng = np.random.default_rng(seed)
    if spec.type == "iid":
        parts = np.array_split(rng.permutation(n), clients)
    elif spec.type == "shards":
        parts = _shards(_labels(y, spec.type), clients, int(spec.shards_per_client or 2), rng)
    else:
        parts = _dirichlet(_labels(y, spec.type), clients, float(spec.alpha or 0.0), rng)
    return [torch.from_numpy(np.sort(p).astype(np.int64)) for p in parts]


def _labels(y: torch.Tensor, kind: str) -> np.ndarray:
    if y.dtype.is_floating_point or y.dim() != 1:
        raise SpecError(
            f"Invalid value for `federated.partition`: {kind!r} splits by class label, but the targets are "
            f"{'floats' if y.dtype.is_floating_point else 'not one label per sample'}; use partition iid",
            field="federated.partition",
        )
    return y.cpu().numpy()


def _shards(labels: np.ndarray, clients: int, per_client: int, rng: np.random.Generator) -> list[np.ndarray]:
    count = clients * per_client
    if count > labels.shape[0]:
        raise SpecError(
            f"Invalid value for `federated.partition.shards_per_client`: {clients} clients x {per_client} shards "
            f"needs at least {count} training samples, received {labels.shape[0]}",
            field="federated.partition.shards_per_client",
        )
    order = np.argsort(labels, kind="stable")
    shards = np.array_split(order, count)
    picks = rng.permutation(count).reshape(clients, per_client)
    return [np.concatenate([shards[s] for s in row]) for row in picks]


def _dirichlet(labels: np.ndarray, clients: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    classes = np.unique(labels)
    for _ in range(_DIRICHLET_TRIES):
        parts: list[list[np.ndarray]] = [[] for _ in range(clients)]
        for c in classes:
            idx = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet(np.full(clients, alpha))
            cuts = (np.cumsum(shares)[:-1] * idx.shape[0]).astype(np.int64)
            for k, piece in enumerate(np.split(idx, cuts)):
                parts[k].append(piece)
        out = [np.concatenate(p) for p in parts]
        if min(p.shape[0] for p in out) > 0:
            return out
    raise SpecError(
        f"Invalid value for `federated.partition.alpha`: Dirichlet({alpha}) left a client without samples in "
        f"{_DIRICHLET_TRIES} draws for {clients} clients and {labels.shape[0]} samples; use fewer clients or a "
        f"larger alpha",
        field="federated.partition.alpha",
    )


def _by_column(spec: PartitionSpec, groups: np.ndarray | None, clients: int) -> list[torch.Tensor]:
    """One client per distinct group name, in sorted order of the names."""
    if groups is None:
        raise SpecError(
            f"Invalid value for `federated.partition.column`: expected the data source to read {spec.column!r} "
            f"as each row's group (add `groups: {spec.column}` to the table source in `data`), received a source "
            f"without groups",
            field="federated.partition.column",
        )
    names, index = np.unique(groups, return_inverse=True)
    if len(names) != clients:
        shown = ", ".join(map(str, names[:5])) + (", ..." if len(names) > 5 else "")
        raise SpecError(
            f"Invalid value for `federated.clients`: expected {len(names)}, the number of distinct {spec.column!r} "
            f"values in the training split ({shown}), received {clients}",
            field="federated.clients",
        )
    return [torch.from_numpy(np.flatnonzero(index == k).astype(np.int64)) for k in range(len(names))]
