"""Secure aggregation: the masks cancel in the sum (to the fixed-point bound), one masked update
says nothing of its client's update, a missing client breaks the sum, and a run with it ends with
the plain run's model while the server's code path only ever holds masked vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import modelyard
from modelyard.errors import DataError
from modelyard.federated import secure
from modelyard.federated.rounds import _combine
from modelyard.federated.secure import FRACTION_BITS, MaskingClient, decode, encode, unmask_sum
from modelyard.federated.spec import FederatedSpec
from modelyard.federated.strategies import weighted_mean
from tests.unit.federated.test_simulation import federated_spec

BOUND = 2.0 ** -(FRACTION_BITS + 1)  # the encoding's rounding per coordinate and client


def round_of(vectors: list[np.ndarray], context: bytes = b"round 1") -> list[np.ndarray]:
    clients = [MaskingClient(i) for i in range(len(vectors))]
    keys = {c.index: c.public_key for c in clients}
    return [c.mask(v, keys, context=context) for c, v in zip(clients, vectors)]


def test_the_masked_sum_equals_the_plain_sum_within_the_fixed_point_bound() -> None:
    rng = np.random.default_rng(0)
    vectors = [rng.normal(0, 0.1, 5000) * 10.0 ** rng.integers(-3, 3) for _ in range(7)]
    masked = round_of(vectors)
    total = unmask_sum(masked)
    assert np.max(np.abs(total - np.sum(vectors, axis=0))) <= 7 * BOUND + 1e-15
    # Exactly the sum of the clients' encodings: the masks cancel to the bit.
    plain = np.zeros(5000, dtype=np.uint64)
    for v in vectors:
        plain += encode(v, parties=7)
    np.testing.assert_array_equal(total, decode(plain))


def test_one_masked_update_is_unrelated_to_the_update() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    update = rng.normal(0, 1, n)
    masked = round_of([update, rng.normal(0, 1, n), rng.normal(0, 1, n)])[0]
    as_numbers = masked.view(np.int64).astype(np.float64)
    limit = 5 / np.sqrt(n)  # five standard errors of a correlation of independent samples
    assert abs(np.corrcoef(as_numbers, update)[0, 1]) < limit
    assert abs(np.corrcoef(as_numbers, np.abs(update))[0, 1]) < limit
    # Uniform over 2^64: the top byte is flat (the mean of 0..255 is 127.5, its standard error ~0.52 here).
    assert (masked >> np.uint64(56)).astype(np.float64).mean() == pytest.approx(127.5, abs=3)
    # The unmasked encoding, in contrast, is the update itself.
    assert np.corrcoef(encode(update, parties=3).view(np.int64).astype(np.float64), update)[0, 1] > 0.999


def test_the_pair_seeds_agree_and_change_with_the_round() -> None:
    a, b = MaskingClient(0), MaskingClient(1)
    assert a._seed(1, b.public_key, b"round 1") == b._seed(0, a.public_key, b"round 1")
    assert a._seed(1, b.public_key, b"round 1") != a._seed(1, b.public_key, b"round 2")


def test_a_client_missing_from_the_sum_leaves_its_masks_in_it() -> None:
    vectors = [np.full(1000, 0.5) for _ in range(3)]
    masked = round_of(vectors)
    partial = unmask_sum(masked[:2])
    assert np.median(np.abs(partial - 1.0)) > 1e6  # no dropout recovery: the round cannot use it


def test_an_update_too_large_for_the_encoding_is_refused() -> None:
    with pytest.raises(DataError, match="Secure aggregation cannot encode a client update"):
        encode(np.array([0.0, 2.0**31]), parties=2)
    with pytest.raises(DataError, match="magnitude nan"):
        encode(np.array([np.nan]), parties=2)


def test_the_secure_round_equals_the_weighted_mean_within_the_bound() -> None:
    g = torch.Generator().manual_seed(2)
    start = {"w": torch.randn(30, 8, generator=g, dtype=torch.float64), "b": torch.randn(8, generator=g)}
    states = [
        {k: v + 0.1 * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in start.items()} for _ in range(4)
    ]
    sizes = [10, 200, 35, 7]
    spec = FederatedSpec.model_validate({"clients": 4, "rounds": 1, "secure_aggregation": True})
    out = _combine(spec, start, states, sizes, None, rnd=1)
    assert out is not None
    reference = weighted_mean(states, sizes)
    # Each client sends size * update: the decoded sum is within 4 * BOUND, divided by the 252 samples.
    assert (out["w"] - reference["w"]).abs().max() <= 4 * BOUND / 252 + 1e-14
    torch.testing.assert_close(out["b"], reference["b"])  # float32: the bound is far below its precision


def test_a_secure_run_ends_with_the_plain_runs_model_and_the_server_sees_only_masks(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[np.ndarray]] = []
    real = secure.unmask_sum

    def spy(masked: list[np.ndarray]) -> np.ndarray:
        seen.append([m.copy() for m in masked])
        return real(masked)

    monkeypatch.setattr(secure, "unmask_sum", spy)
    plain = modelyard.train(federated_spec(), home=home / "plain", progress=False)
    masked = modelyard.train(federated_spec(secure_aggregation=True), home=home / "secure", progress=False)
    assert len(seen) == 3 and all(len(r) == 4 for r in seen)  # every round went through the masked sum
    assert all(m.dtype == np.uint64 for r in seen for m in r)
    for m in seen[0]:  # no masked vector is near a plausible update (weights move by << 1e6 per round)
        assert np.median(np.abs(m.view(np.int64).astype(np.float64) / 2.0**FRACTION_BITS)) > 1e6
    # Quantisation: |error| <= 2^-33 per coordinate of the mean, far below float32's resolution of these weights.
    a, b = plain.network.state_dict(), masked.network.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    assert masked.test_metrics["accuracy"] == pytest.approx(plain.test_metrics["accuracy"], abs=1e-6)
    assert masked.runtime["federated"]["secure_aggregation"] is True
