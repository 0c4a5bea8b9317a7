"""Secure aggregation: the masks cancel in the sum (to the fixed-point bound), one masked update
says nothing of its client's update, a missing client's masks stay in the plain sum of the masked
vectors (the recovery takes them off: test_secure_recovery.py), and a run with it ends with the
plain run's model while the server's code path only ever holds masked vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import modelyard
from modelyard.errors import DataError
from modelyard.federated.rounds import _combine
from modelyard.federated.secure import FRACTION_BITS, KeyPair, decode, encode, pair_seed
from modelyard.federated.secure_round import SecureServer, secure_sum
from modelyard.federated.spec import FederatedSpec
from modelyard.federated.strategies import weighted_mean
from tests.unit.federated.test_simulation import federated_spec

BOUND = 2.0 ** -(FRACTION_BITS + 1)  # the encoding's rounding per coordinate and client


def round_of(vectors: list[np.ndarray], monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """The masked vectors the server collects in a secure round of ``vectors`` (no client drops)."""
    seen: list[np.ndarray] = []
    real = SecureServer.collect

    def spy(self: SecureServer, masked: dict[int, np.ndarray]) -> list[int]:
        seen.extend(masked[k].copy() for k in sorted(masked))
        return real(self, masked)

    monkeypatch.setattr(SecureServer, "collect", spy)
    secure_sum(dict(enumerate(vectors)), list(range(len(vectors))), threshold=2, context=b"round 1", name="t")
    return seen


def unmask_sum(masked: list[np.ndarray]) -> np.ndarray:
    """The masked vectors summed mod 2^64 and decoded, with no mask taken off."""
    total = np.zeros_like(masked[0])
    for vector in masked:
        total += vector
    return decode(total)


def test_the_masked_sum_equals_the_plain_sum_within_the_fixed_point_bound() -> None:
    rng = np.random.default_rng(0)
    vectors = [rng.normal(0, 0.1, 5000) * 10.0 ** rng.integers(-3, 3) for _ in range(7)]
    total = secure_sum(dict(enumerate(vectors)), list(range(7)), threshold=5, context=b"round 1", name="t")
    assert np.max(np.abs(total - np.sum(vectors, axis=0))) <= 7 * BOUND + 1e-15
    # Exactly the sum of the clients' encodings: the masks cancel to the bit.
    plain = np.zeros(5000, dtype=np.uint64)
    for v in vectors:
        plain += encode(v, parties=7)
    np.testing.assert_array_equal(total, decode(plain))


def test_one_masked_update_is_unrelated_to_the_update(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    update = rng.normal(0, 1, n)
    masked = round_of([update, rng.normal(0, 1, n), rng.normal(0, 1, n)], monkeypatch)[0]
    as_numbers = masked.view(np.int64).astype(np.float64)
    limit = 5 / np.sqrt(n)  # five standard errors of a correlation of independent samples
    assert abs(np.corrcoef(as_numbers, update)[0, 1]) < limit
    assert abs(np.corrcoef(as_numbers, np.abs(update))[0, 1]) < limit
    # Uniform over 2^64: the top byte is flat (the mean of 0..255 is 127.5, its standard error ~0.52 here).
    assert (masked >> np.uint64(56)).astype(np.float64).mean() == pytest.approx(127.5, abs=3)
    # The unmasked encoding, in contrast, is the update itself.
    assert np.corrcoef(encode(update, parties=3).view(np.int64).astype(np.float64), update)[0, 1] > 0.999


def test_the_pair_seeds_agree_and_change_with_the_round() -> None:
    a, b = KeyPair(), KeyPair()
    assert pair_seed(a, 0, 1, b.public, b"round 1") == pair_seed(b, 1, 0, a.public, b"round 1")
    assert pair_seed(a, 0, 1, b.public, b"round 1") != pair_seed(a, 0, 1, b.public, b"round 2")


def test_the_masked_vectors_alone_do_not_sum_to_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    vectors = [np.full(1000, 0.5) for _ in range(3)]
    masked = round_of(vectors, monkeypatch)
    # The self masks stay in the sum of all three, and a missing client's pair masks in the sum of two:
    # only the unmasking round's shares take them off.
    assert np.median(np.abs(unmask_sum(masked) - 1.5)) > 1e6
    assert np.median(np.abs(unmask_sum(masked[:2]) - 1.0)) > 1e6


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
    out = _combine(spec, start, dict(enumerate(states)), sizes, None, rnd=1)
    assert out is not None
    reference = weighted_mean(states, sizes)
    # Each client sends size * update: the decoded sum is within 4 * BOUND, divided by the 252 samples.
    assert (out["w"] - reference["w"]).abs().max() <= 4 * BOUND / 252 + 1e-14
    torch.testing.assert_close(out["b"], reference["b"])  # float32: the bound is far below its precision


def test_a_secure_run_ends_with_the_plain_runs_model_and_the_server_sees_only_masks(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[np.ndarray]] = []
    real = SecureServer.collect

    def spy(self: SecureServer, masked: dict[int, np.ndarray]) -> list[int]:
        seen.append([m.copy() for m in masked.values()])
        return real(self, masked)

    monkeypatch.setattr(SecureServer, "collect", spy)
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
    assert masked.runtime["federated"]["secure_aggregation"] == {"threshold": 3}  # ceil(2/3 of 4)
    assert plain.runtime["federated"]["secure_aggregation"] is False
