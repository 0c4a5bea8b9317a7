"""The request log: one batched reduction at flush gives each instance the row reduce_features gives it alone."""

from __future__ import annotations

import numpy as np
import torch

from modelyard.monitoring.reference import reduce_features
from modelyard.serving.request_log import RequestLog


def test_flush_reduces_requests_of_any_size_as_each_one_alone() -> None:
    log = RequestLog(100, 1.0, seed=0)
    torch.manual_seed(0)
    requests = [torch.rand(n, 28, 28) for n in (1, 3, 2)]
    ids = [log.record(x, np.full((len(x), 10), i, dtype=np.float32), 0.001 * i) for i, x in enumerate(requests)]
    assert log.flush() == 6 and log.logged == 6
    rows = list(log.rows)
    start = 0
    for i, (request_id, x) in enumerate(zip(ids, requests)):
        alone = reduce_features(x).numpy()
        for j in range(len(x)):
            row = rows[start + j]
            assert (row.request_id, row.index, row.latency_s) == (request_id, j, 0.001 * i)
            np.testing.assert_allclose(row.features, alone[j], rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(row.outputs, np.full(10, i, dtype=np.float32))
        start += len(x)
    assert log.flush() == 0
