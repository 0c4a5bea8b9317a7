"""Client partitions: disjoint, covering, as skewed as asked, and refused when they cannot be made."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelyard.errors import SpecError
from modelyard.federated.partition import partition
from modelyard.federated.spec import PartitionSpec

LABELS = torch.arange(10).repeat_interleave(100)  # 10 classes x 100 samples


def covers(parts: list[torch.Tensor], n: int) -> bool:
    joined = torch.cat(parts)
    return joined.numel() == n and torch.equal(joined.sort().values, torch.arange(n))


def classes_per_client(parts: list[torch.Tensor], share: float = 0.05) -> float:
    """Mean number of classes making up more than ``share`` of a client's samples."""
    counts = [np.bincount(LABELS[p].numpy(), minlength=10) / len(p) for p in parts]
    return float(np.mean([(c > share).sum() for c in counts]))


@pytest.mark.parametrize("spec", [{"type": "iid"}, {"dirichlet": 0.3}, {"shards": {"shards_per_client": 2}}])
def test_every_partition_is_disjoint_covering_and_seeded(spec: dict) -> None:
    parsed = PartitionSpec.model_validate(spec)
    parts = partition(LABELS, parsed, 10, seed=3)
    assert len(parts) == 10 and covers(parts, 1000) and min(len(p) for p in parts) > 0
    again = partition(LABELS, parsed, 10, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(parts, again))


def test_iid_gives_equal_sizes_and_small_alpha_and_shards_give_few_classes() -> None:
    iid = partition(LABELS, PartitionSpec(type="iid"), 10, seed=0)
    assert {len(p) for p in iid} == {100} and classes_per_client(iid) >= 9
    skewed = partition(LABELS, PartitionSpec(type="dirichlet", alpha=0.1), 10, seed=0)
    wide = partition(LABELS, PartitionSpec(type="dirichlet", alpha=100.0), 10, seed=0)
    assert classes_per_client(skewed) < 4 < 9 <= classes_per_client(wide)
    shards = partition(LABELS, PartitionSpec(type="shards", shards_per_client=2), 10, seed=0)
    assert all(len(torch.unique(LABELS[p])) <= 2 for p in shards)  # 100-sample shards of sorted labels


def test_more_clients_than_samples_and_float_targets_are_refused() -> None:
    with pytest.raises(
        SpecError, match=r"`federated.clients`: expected at most the 1000 training samples, received 1001"
    ):
        partition(LABELS, PartitionSpec(type="iid"), 1001, seed=0)
    with pytest.raises(SpecError, match="splits by class label, but the targets are floats; use partition iid"):
        partition(torch.rand(50), PartitionSpec(type="dirichlet", alpha=1.0), 5, seed=0)
    with pytest.raises(SpecError, match="needs at least 1200 training samples, received 1000"):
        partition(LABELS, PartitionSpec(type="shards", shards_per_client=120), 10, seed=0)


def test_a_column_partition_gives_each_group_its_own_rows() -> None:
    groups = np.array(["north", "south", "east"] * 4 + ["east"])
    parts = partition(torch.zeros(13), PartitionSpec.model_validate({"column": "site"}), 3, seed=0, groups=groups)
    assert covers(parts, 13)
    # Sorted by name: east, north, south; every row of a client has its group.
    assert [sorted(set(groups[p.numpy()])) for p in parts] == [["east"], ["north"], ["south"]]
    assert [len(p) for p in parts] == [5, 4, 4]


def test_a_column_partition_needs_the_groups_and_one_client_per_group() -> None:
    spec = PartitionSpec.model_validate({"column": "site"})
    with pytest.raises(SpecError, match=r"add `groups: site` to the table source in `data`"):
        partition(LABELS, spec, 3, seed=0)
    with pytest.raises(
        SpecError,
        match=r"`federated.clients`: expected 2, the number of distinct 'site' values .* \(a, b\), received 3",
    ):
        partition(torch.zeros(4), spec, 3, seed=0, groups=np.array(["a", "b", "a", "b"]))
    with pytest.raises(ValueError, match="partition 'column' needs the column"):
        PartitionSpec.model_validate("column")
