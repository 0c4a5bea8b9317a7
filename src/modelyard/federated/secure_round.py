"""One round of secure aggregation with dropout recovery (Bonawitz et al. 2017, Figure 4).

The honest-but-curious protocol of "Practical Secure Aggregation for Privacy-Preserving Machine
Learning" (CCS 2017), its four rounds as messages, so the simulation (``secure_sum``, every party
in one process) and a deployed aggregator relaying them over HTTP drive the same code:

0. AdvertiseKeys: each client u makes two X25519 key pairs, a channel pair (c) for the share
   envelopes and a mask pair (s) for the pair masks; the server relays the public keys (U1).
1. ShareKeys: u draws a self-mask seed b_u and t-of-|U1| Shamir-shares both b_u and its mask
   private key s_u among U1 (``shares.py``), each holder's shares sealed for it (AES-GCM); the
   server routes the envelopes. U2: the clients whose envelopes arrived.
2. MaskedInput: u sends y_u = x_u + PRG(b_u) + sum over v in U2 of +-PRG(s_uv), mod 2^64.
   U3: the clients whose masked input arrived; the others of U2 have dropped.
3. Unmasking: each survivor v in U3 opens the envelopes it holds and returns, for each u in U2,
   u's b_u share if u is in U3 and u's s_u share otherwise, never both (it answers once). From t
   answers the server rebuilds every survivor's b_u and every dropped client's s_u, removes the
   self masks and the dropped clients' pair masks from the sum of U3's masked inputs, and decodes.

The self mask is what keeps a survivor's input hidden from a server that claims it dropped (to
get its s_u shares) after its masked input arrived: the pair masks come off, PRG(b_u) stays.
Not covered (docs/federated.md): an active server (no signatures on the advertised keys, no
consistency round), malicious clients (a wrong share is caught for s_u, which must match u's
public key, not for b_u).
"""

from __future__ import annotations

import os
import struct

import numpy as np

from modelyard.errors import TrainingError
from modelyard.federated.secure import KeyPair, add_pair_mask, decode, encode, prg
from modelyard.federated.shares import SECRET_BYTES, channel_key, combine, seal, split, unseal

__all__ = ["SecureClient", "SecureServer", "PublicKeys", "Reveal", "secure_sum"]

PublicKeys = tuple[bytes, bytes]  # (channel public key, mask public key), 32 raw bytes each
Reveal = tuple[str, int, bytes]  # ("b" self-mask seed | "s" mask private key, Shamir x, 32-byte share)


class SecureClient:
    """Client ``index``'s side of one secure round: its keys, its shares, its masked input, its answers."""

    def __init__(self, index: int, *, threshold: int, context: bytes) -> None:
        self.index, self.threshold, self.context = index, threshold, context
        self._channel, self._masking = KeyPair(), KeyPair()
        self._self_seed = os.urandom(SECRET_BYTES)
        self._keys: dict[int, PublicKeys] = {}
        self._held: dict[int, bytes] = {}  # u -> u's envelope for this client
        self._answered = False

    def advertise(self) -> PublicKeys:
        return self._channel.public, self._masking.public

    def share_keys(self, keys: dict[int, PublicKeys]) -> dict[int, bytes]:
        """The envelope of this client's two shares for each client of U1 (itself included), by holder."""
        self._check(keys, "advertised keys (U1)")
        if keys[self.index] != self.advertise():
            raise TrainingError(f"Client {self.index}: the relayed keys are not the ones it advertised")
        self._keys = dict(keys)
        holders = sorted(keys)
        mask_shares = split(self._masking.private, self.threshold, len(holders))
        seed_shares = split(self._self_seed, self.threshold, len(holders))
        out = {}
        for v, (x, s_share), (_, b_share) in zip(holders, mask_shares, seed_shares):
            key = channel_key(self._channel, keys[v][0], self.context, self.index, v)
            plain = struct.pack(">I", x) + s_share + b_share
            out[v] = seal(key, plain, context=self.context, sender=self.index, holder=v)
        return out

    def mask(self, vector: np.ndarray, envelopes: dict[int, bytes]) -> np.ndarray:
        """``vector`` in fixed point plus the self mask and the pair masks with U2 (the senders of ``envelopes``)."""
        self._check(envelopes, "clients that shared their keys (U2)")
        if not set(envelopes) <= set(self._keys):
            raise TrainingError(f"Client {self.index}: envelopes from clients that advertised no keys")
        self._held = dict(envelopes)
        out = encode(vector, parties=len(envelopes)) + prg(self._self_seed, vector.shape[0])
        for v in sorted(envelopes):
            if v != self.index:
                add_pair_mask(out, self._masking, self.index, v, self._keys[v][1], self.context)
        return out

    def reveal(self, survivors: list[int]) -> dict[int, Reveal]:
        """For each u of U2: u's self-mask share if u is in ``survivors`` (U3), else u's mask-key share. Once."""
        if self._answered:
            raise TrainingError(f"Client {self.index}: already answered this round's unmasking (it answers once)")
        alive = set(survivors)
        if not alive <= set(self._held) or self.index not in alive or len(alive) < self.threshold:
            raise TrainingError(
                f"Client {self.index}: refuses to unmask for survivors {sorted(alive)}: expected at least "
                f"{self.threshold} clients of U2 {sorted(self._held)}, itself included"
            )
        self._answered = True
        out: dict[int, Reveal] = {}
        for u, envelope in sorted(self._held.items()):
            key = channel_key(self._channel, self._keys[u][0], self.context, u, self.index)
            plain = unseal(key, envelope, context=self.context, sender=u, holder=self.index)
            if plain is None or len(plain) != 4 + 2 * SECRET_BYTES:
                raise TrainingError(f"Client {self.index}: the envelope from client {u} does not open")
            (x,) = struct.unpack(">I", plain[:4])
            share = plain[4 + SECRET_BYTES :] if u in alive else plain[4 : 4 + SECRET_BYTES]
            out[u] = ("b" if u in alive else "s", x, share)
        return out

    def _check(self, clients: dict[int, object], what: str) -> None:
        if self.index not in clients or len(clients) < self.threshold:
            raise TrainingError(
                f"Client {self.index}: expected at least secure_aggregation.threshold ({self.threshold}) "
                f"{what}, itself included; received {sorted(clients)}"
            )


class SecureServer:
    """The aggregator's side of one secure round: it relays keys and envelopes, and sees only masked inputs."""

    def __init__(self, *, threshold: int, context: bytes, name: str) -> None:
        self.threshold, self.context, self.name = threshold, context, name
        self._keys: dict[int, PublicKeys] = {}
        self._u2: list[int] = []
        self._masked: dict[int, np.ndarray] = {}

    def relay_keys(self, advertised: dict[int, PublicKeys]) -> dict[int, PublicKeys]:
        """U1's public keys, which every client of U1 gets."""
        self._enough(advertised, "advertised their keys")
        self._keys = dict(advertised)
        return dict(advertised)

    def relay_shares(self, sent: dict[int, dict[int, bytes]]) -> dict[int, dict[int, bytes]]:
        """Each holder's envelopes ``{sender: envelope}``, from the clients of U1 that sent theirs (U2)."""
        self._enough(sent, "shared their keys")
        u2 = sorted(u for u in sent if u in self._keys and set(sent[u]) == set(self._keys))
        self._enough(dict.fromkeys(u2), "shared their keys with every client that advertised one")
        self._u2 = u2
        return {v: {u: sent[u][v] for u in u2} for v in u2}

    def collect(self, masked: dict[int, np.ndarray]) -> list[int]:
        """Keep the masked inputs that arrived; the survivors (U3) whom the server asks to unmask."""
        arrived = {u: y for u, y in masked.items() if u in self._u2}
        if len(arrived) < self.threshold:
            dropped = len(self._u2) - len(arrived)
            raise TrainingError(
                f"Secure aggregation, {self.name}: {len(arrived)} of {len(self._u2)} clients sent their masked "
                f"update ({dropped} dropped), below secure_aggregation.threshold ({self.threshold}): the dropped "
                "clients' masks cannot be removed and the round fails; lower federated.dropout or the threshold"
            )
        self._masked = arrived
        return sorted(arrived)

    def unmask(self, answers: dict[int, dict[int, Reveal]]) -> np.ndarray:
        """The decoded sum of U3's inputs, from ``threshold`` or more survivors' answers."""
        survivors = sorted(self._masked)
        answers = {v: a for v, a in answers.items() if v in self._masked}
        if len(answers) < self.threshold:
            raise TrainingError(
                f"Secure aggregation, {self.name}: {len(answers)} survivors answered the unmasking, below "
                f"secure_aggregation.threshold ({self.threshold}); the masks cannot be removed"
            )
        size = next(iter(self._masked.values())).shape[0]
        total = np.zeros(size, dtype=np.uint64)
        for u in survivors:
            total += self._masked[u]
        for u in self._u2:
            kind = "b" if u in self._masked else "s"
            shares = [(x, share) for a in answers.values() if u in a for k, x, share in [a[u]] if k == kind]
            if len(shares) < self.threshold:
                raise TrainingError(
                    f"Secure aggregation, {self.name}: {len(shares)} shares of client {u}'s "
                    f"{'self-mask seed' if kind == 'b' else 'mask key'}, below the threshold ({self.threshold})"
                )
            secret = combine(shares[: self.threshold])  # any t shares give it; pycryptodome's cost grows as k^2
            if kind == "b":
                total -= prg(secret, size)
                continue
            keys = KeyPair(secret)
            if keys.public != self._keys[u][1]:
                raise TrainingError(
                    f"Secure aggregation, {self.name}: client {u}'s mask key rebuilt from the survivors' shares "
                    "does not match its public key (a survivor sent a wrong share)"
                )
            for v in survivors:  # v added its pair mask with u as v sees it: take that off again
                add_pair_mask(total, keys, v, u, self._keys[v][1], self.context, remove=True)
        return decode(total)

    def _enough(self, clients: dict[int, object], what: str) -> None:
        if len(clients) < self.threshold:
            raise TrainingError(
                f"Secure aggregation, {self.name}: {len(clients)} clients {what}, below "
                f"secure_aggregation.threshold ({self.threshold}); the round fails"
            )


def secure_sum(
    vectors: dict[int, np.ndarray], clients: list[int], *, threshold: int, context: bytes, name: str
) -> np.ndarray:
    """The sum of ``vectors`` (by client) through one secure round in one process: every client of ``clients``
    shares its keys, those in ``vectors`` send masked inputs, the others drop before theirs arrives."""
    server = SecureServer(threshold=threshold, context=context, name=name)
    peers = {u: SecureClient(u, threshold=threshold, context=context) for u in clients}
    keys = server.relay_keys({u: c.advertise() for u, c in peers.items()})
    inbox = server.relay_shares({u: c.share_keys(keys) for u, c in peers.items()})
    survivors = server.collect({u: peers[u].mask(v, inbox[u]) for u, v in vectors.items()})
    return server.unmask({v: peers[v].reveal(survivors) for v in survivors})
