"""The request log: one batched reduction at flush gives each instance the row reduce_features gives it alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from modelyard.errors import InvalidInstancesError
from modelyard.monitoring.reference import reduce_features
from modelyard.serving.request_log import RequestLog


def test_flush_reduces_requests_of_any_size_as_each_one_alone() -> None:
    log = RequestLog(100, 1.0, seed=0)
    torch.manual_seed(0)
    requests = [torch.rand(n, 28, 28) for n in (1, 3, 2)]
    ids = [log.record(x, np.full((len(x), 10), i, dtype=np.float32), 0.001 * i) for i, x in enumerate(requests)]
    assert log.flush() == 6 and log.logged == 6
    window = log.window(6)
    start = 0
    for i, (request_id, x) in enumerate(zip(ids, requests)):
        alone = reduce_features(x).numpy()
        for j in range(len(x)):
            row = start + j
            assert (window.request_ids[row], window.indexes[row], window.latency_s[row]) == (request_id, j, 0.001 * i)
            np.testing.assert_allclose(window.features[row], alone[j], rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(window.outputs[row], np.full(10, i, dtype=np.float32))
        start += len(x)
    assert log.flush() == 0


def test_the_log_keeps_the_last_capacity_instances_and_windows_cut_through_requests() -> None:
    log = RequestLog(5, 1.0, seed=0)
    torch.manual_seed(1)
    requests = [torch.rand(n, 28, 28) for n in (2, 3, 2, 1)]  # 8 instances through a log of 5
    ids = [log.record(x, np.full((len(x), 3), i, dtype=np.float32), 0.0) for i, x in enumerate(requests)]
    log.flush()
    assert log.kept() == 5 and log.logged == 8
    every = torch.cat(requests)
    window = log.window(4)  # the last 4: one of request 1, both of 2, request 3
    assert window.request_ids == [ids[1], ids[2], ids[2], ids[3]] and window.indexes.tolist() == [2, 0, 1, 0]
    np.testing.assert_allclose(window.features, reduce_features(every[-4:]).numpy(), rtol=1e-6, atol=1e-7)
    assert window.outputs[:, 0].tolist() == [1, 2, 2, 3]
    assert len(log.window(5)) == 5
    with pytest.raises(InvalidInstancesError, match="expected at most the 5 instances"):
        log.window(6)
    assert log.feedback(ids[2], ["a", "b"]) == 2
    assert log.labels(window) == [None, "a", "b", None]
