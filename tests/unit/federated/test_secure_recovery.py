"""Secure aggregation's dropout recovery (Bonawitz et al. 2017): with k <= n - t clients dropped after
sharing their keys the server's sum is the survivors' plain sum (to the fixed-point bound), with more
the round fails in one line; the server gets one kind of share per client, the self mask keeps a
client hidden from a server that claims it dropped late, and wrong shares or envelopes are caught."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import modelyard
from modelyard.errors import MissingDependencyError, TrainingError
from modelyard.federated import shares
from modelyard.federated.secure import FRACTION_BITS, KeyPair, add_pair_mask, decode, encode, prg
from modelyard.federated.secure_round import SecureClient, SecureServer, secure_sum
from modelyard.store import ModelStore, RunStore
from tests.unit.federated.test_simulation import federated_spec

BOUND = 2.0 ** -(FRACTION_BITS + 1)  # the encoding's rounding per coordinate and client
CONTEXT = b"round 1"


def vectors_of(n: int, size: int = 3000, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {u: rng.normal(0, 0.1, size) * 10.0 ** rng.integers(-2, 2) for u in range(n)}


def parties(n: int, t: int) -> tuple[SecureServer, dict[int, SecureClient], dict[int, dict[int, bytes]]]:
    """Rounds 0 and 1 of ``n`` clients: keys advertised, shares routed; the inboxes of each client."""
    server = SecureServer(threshold=t, context=CONTEXT, name="round 1")
    clients = {u: SecureClient(u, threshold=t, context=CONTEXT) for u in range(n)}
    keys = server.relay_keys({u: c.advertise() for u, c in clients.items()})
    inbox = server.relay_shares({u: c.share_keys(keys) for u, c in clients.items()})
    return server, clients, inbox


@pytest.mark.parametrize("dropped", [(), (4,), (0, 3)])
def test_the_recovered_sum_is_the_survivors_plain_sum(dropped: tuple[int, ...]) -> None:
    n, t = 6, 4  # up to n - t = 2 clients may drop
    vectors = vectors_of(n)
    alive = {u: v for u, v in vectors.items() if u not in dropped}
    total = secure_sum(alive, list(range(n)), threshold=t, context=CONTEXT, name="round 1")
    plain = np.sum(list(alive.values()), axis=0)
    assert np.max(np.abs(total - plain)) <= len(alive) * BOUND + 1e-15
    # The masks come off to the bit: exactly the sum of the survivors' encodings.
    encoded = np.zeros(3000, dtype=np.uint64)
    for v in alive.values():
        encoded += encode(v, parties=n)
    np.testing.assert_array_equal(total, decode(encoded))
    # On the mean of the survivors (what a round computes), within 2^-33 per coordinate.
    assert np.max(np.abs(total / len(alive) - plain / len(alive))) <= BOUND


def test_more_than_n_minus_t_dropouts_fail_the_round_in_one_line() -> None:
    n, t = 6, 4
    vectors = vectors_of(n)
    with pytest.raises(TrainingError) as info:
        secure_sum({u: vectors[u] for u in (0, 1, 2)}, list(range(n)), threshold=t, context=CONTEXT, name="round 1")
    message = info.value.message
    assert "round 1: 3 of 6 clients sent their masked update (3 dropped), below secure_aggregation.threshold (4)" in (
        message
    )
    assert "\n" not in message


def test_the_server_gets_self_mask_shares_of_survivors_and_key_shares_of_the_dropped_only() -> None:
    n, t = 5, 3
    server, clients, inbox = parties(n, t)
    vectors = vectors_of(n, 500)
    survivors = server.collect({u: clients[u].mask(vectors[u], inbox[u]) for u in (0, 1, 3)})
    assert survivors == [0, 1, 3]
    answers = {v: clients[v].reveal(survivors) for v in survivors}
    for answer in answers.values():
        assert {u: kind for u, (kind, _, _) in answer.items()} == {0: "b", 1: "b", 2: "s", 3: "b", 4: "s"}
    # A client answers once: the server cannot ask again with another survivor list to get both shares.
    with pytest.raises(TrainingError, match="already answered this round's unmasking"):
        clients[0].reveal([0, 1, 2, 3])
    total = server.unmask(answers)
    plain = vectors[0] + vectors[1] + vectors[3]
    assert np.max(np.abs(total - plain)) <= 3 * BOUND + 1e-15


def test_the_self_mask_hides_a_client_the_server_claims_dropped_after_its_input_arrived() -> None:
    n, t, size = 4, 3, 20_000
    server, clients, inbox = parties(n, t)
    rng = np.random.default_rng(3)
    update = rng.normal(0, 1, size)
    masked = clients[3].mask(update, inbox[3])
    for u in (0, 1, 2):
        clients[u].mask(rng.normal(0, 1, size), inbox[u])
    # The server lies: client 3 "dropped". The others answer with client 3's mask-key shares.
    answers = {v: clients[v].reveal([0, 1, 2]) for v in (0, 1, 2)}
    key = KeyPair(shares.combine([(x, s) for a in answers.values() for kind, x, s in [a[3]] if kind == "s"]))
    assert key.public == clients[3].advertise()[1]  # it really rebuilt client 3's mask key
    residual = masked.copy()
    for v in (0, 1, 2):
        add_pair_mask(residual, key, 3, v, clients[v].advertise()[1], CONTEXT, remove=True)
    # All pair masks are off, yet what is left is x + PRG(b_3): uniform, unrelated to the update.
    as_numbers = residual.view(np.int64).astype(np.float64)
    assert abs(np.corrcoef(as_numbers, update)[0, 1]) < 5 / np.sqrt(size)
    assert np.median(np.abs(decode(residual))) > 1e6
    # Without the self mask it would be the update: the pair masks are all the server removed.
    np.testing.assert_array_equal(residual - prg(clients[3]._self_seed, size), encode(update, parties=n))


def test_a_wrong_key_share_is_caught_against_the_public_key() -> None:
    server, clients, inbox = parties(4, 3)
    vectors = vectors_of(4, 200)
    survivors = server.collect({u: clients[u].mask(vectors[u], inbox[u]) for u in (0, 1, 2)})
    answers = {v: clients[v].reveal(survivors) for v in survivors}
    kind, x, share = answers[1][3]
    # (not in byte 0's low bits: X25519 clears them, so a change there is the same key)
    answers[1][3] = (kind, x, share[:5] + bytes([share[5] ^ 1]) + share[6:])
    with pytest.raises(TrainingError, match="client 3's mask key rebuilt from the survivors' shares does not match"):
        server.unmask(answers)


def test_an_envelope_passed_to_another_holder_does_not_open() -> None:
    server, clients, inbox = parties(3, 2)
    vectors = vectors_of(3, 100)
    inbox[0][2], inbox[1][2] = inbox[1][2], inbox[0][2]  # the server swaps client 2's envelopes for 0 and 1
    for u in (0, 1):
        clients[u].mask(vectors[u], inbox[u])
    with pytest.raises(TrainingError, match="Client 0: the envelope from client 2 does not open"):
        clients[0].reveal([0, 1])


def test_fewer_answers_than_the_threshold_cannot_unmask() -> None:
    server, clients, inbox = parties(4, 3)
    vectors = vectors_of(4, 100)
    survivors = server.collect({u: clients[u].mask(vectors[u], inbox[u]) for u in (0, 1, 2)})
    answers = {v: clients[v].reveal(survivors) for v in survivors[:2]}
    with pytest.raises(TrainingError, match="2 survivors answered the unmasking, below secure_aggregation.threshold"):
        server.unmask(answers)


def test_shamir_shares_give_the_secret_back_from_any_t_and_not_from_fewer() -> None:
    secret = bytes(range(32))
    given = shares.split(secret, 3, 5)
    assert [x for x, _ in given] == [1, 2, 3, 4, 5] and all(len(s) == 32 for _, s in given)
    for subset in ([0, 1, 2], [4, 2, 0], [1, 3, 4], [0, 1, 2, 3, 4]):
        assert shares.combine([given[i] for i in subset]) == secret
    assert shares.combine(given[:2]) != secret  # two points do not fix a degree-2 polynomial


def test_a_run_with_dropouts_ends_with_the_plain_runs_model_over_the_same_survivors(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[int, np.ndarray]] = []
    real = SecureServer.collect

    def spy(self: SecureServer, masked: dict[int, np.ndarray]) -> list[int]:
        seen.append({u: m.copy() for u, m in masked.items()})
        return real(self, masked)

    monkeypatch.setattr(SecureServer, "collect", spy)
    # 4 clients, dropout 0.25: one drawn client drops each round (seeded), after sharing its keys.
    plain = modelyard.train(federated_spec(dropout=0.25), home=home / "plain", progress=False)
    masked = modelyard.train(
        federated_spec(dropout=0.25, secure_aggregation=True), home=home / "secure", progress=False
    )
    full = modelyard.train(federated_spec(), home=home / "full", progress=False)
    assert [len(r) for r in seen] == [3, 3, 3]  # every round: three masked updates, one client dropped
    assert all(m.dtype == np.uint64 and np.median(np.abs(decode(m))) > 1e6 for r in seen for m in r.values())
    for run in (plain, masked):
        assert [(row["clients"], row["dropped"]) for row in run.history] == [(3, 1)] * 3
    a, b, c = plain.network.state_dict(), masked.network.state_dict(), full.network.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    assert any((a[k] - c[k]).abs().max() > 1e-3 for k in a)  # the dropouts changed the model: a real difference
    assert masked.runtime["federated"]["dropout"] == 0.25


def test_a_run_with_more_dropouts_than_the_threshold_allows_fails_and_registers_nothing(home: Path) -> None:
    spec = federated_spec(dropout=0.5, secure_aggregation={"threshold": 3})  # 2 of 4 survive, 3 needed
    with pytest.raises(TrainingError) as info:
        modelyard.train(spec, home=home, progress=False)
    assert "round 1: 2 of 4 clients sent their masked update (2 dropped), below secure_aggregation.threshold (3)" in (
        info.value.message
    )
    assert ModelStore(home).list() == []
    assert [run.status for run in RunStore(home).list()] == ["failed"]


def test_without_pycryptodome_a_secure_run_is_one_line_naming_the_extra(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "Crypto", None)  # as if pycryptodome were not installed
    monkeypatch.setitem(sys.modules, "Crypto.Protocol", None)
    monkeypatch.setitem(sys.modules, "Crypto.Protocol.SecretSharing", None)
    with pytest.raises(MissingDependencyError) as info:
        modelyard.train(federated_spec(secure_aggregation=True), home=home, progress=False)
    assert "pip install 'modelyard[privacy]'" in info.value.message and "\n" not in info.value.message
    assert RunStore(home).list() == []
