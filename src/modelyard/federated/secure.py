"""The arithmetic and key agreement of secure aggregation (Bonawitz et al. 2017).

"Practical Secure Aggregation for Privacy-Preserving Machine Learning" (CCS 2017): every pair
(i, j) of a round's clients agrees on a key by X25519 Diffie-Hellman over their public keys (the
server only relays public keys), stretches it with HKDF-SHA256 into a seed (``pair_seed``), and
expands the seed into a mask vector with AES-256 in CTR mode (``prg``). Client i adds the masks
it shares with every j > i and subtracts those with every j < i, so the masks cancel in the sum
of all clients' vectors and nothing else. Arithmetic is on a fixed-point encoding mod 2^64: x
becomes round(x * 2^FRACTION_BITS) as a two's complement 64-bit integer, so the masks cancel
exactly and only the encoding's rounding remains: each coordinate of the decoded sum of m
vectors is within m * 2^-(FRACTION_BITS + 1) of the true sum. The protocol's rounds, with the
dropout recovery, are ``secure_round.py``'s.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import numpy as np

from modelyard.errors import DataError, optional_dependency

__all__ = [
    "FRACTION_BITS",
    "KeyPair",
    "agree",
    "check_installed",
    "decode",
    "encode",
    "pair_seed",
    "primitives",
    "prg",
    "add_pair_mask",
]

FRACTION_BITS = 32  # 2^-33 rounding per coordinate; sums up to 2^31 in magnitude fit in 64 bits
_LIMIT = float(2 ** (63 - FRACTION_BITS))  # |sum of the round's vectors| must stay below this


@functools.cache  # imported once: a round calls it for every key agreement and mask
def primitives() -> Any:
    """The ``cryptography`` primitives used here (extra ``modelyard[privacy]``), imported on first use."""
    with optional_dependency("privacy", "secure aggregation (federated.secure_aggregation)"):
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import x25519
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return SimpleNamespace(
        hashes=hashes,
        serialization=serialization,
        x25519=x25519,
        Cipher=Cipher,
        algorithms=algorithms,
        modes=modes,
        HKDF=HKDF,
        AESGCM=AESGCM,
        InvalidTag=InvalidTag,
    )


def check_installed() -> None:
    """The one-line missing-extra error (``modelyard[privacy]``) now, before a run exists."""
    primitives()


def encode(vector: np.ndarray, *, parties: int) -> np.ndarray:
    """Fixed-point ``vector`` as uint64 (two's complement); refuses values whose sum over ``parties`` could wrap."""
    peak = float(np.max(np.abs(vector))) if vector.size else 0.0
    if not np.isfinite(peak) or peak * parties >= _LIMIT:
        raise DataError(
            f"Secure aggregation cannot encode a client update with a coordinate of magnitude {peak:g}: expected "
            f"below 2^{63 - FRACTION_BITS} / {parties} clients; lower train.lr or local_epochs (the update diverged)"
        )
    return np.rint(vector * 2.0**FRACTION_BITS).astype(np.int64).view(np.uint64)


def decode(encoded: np.ndarray) -> np.ndarray:
    """The float64 values of a fixed-point uint64 vector (a sum of encoded vectors decodes to their sum)."""
    return encoded.view(np.int64).astype(np.float64) / 2.0**FRACTION_BITS


def prg(seed: bytes, size: int) -> np.ndarray:
    """``size`` uniform uint64 numbers: the AES-256-CTR keystream of ``seed`` (a PRG, as in the paper)."""
    c = primitives()
    stream = c.Cipher(c.algorithms.AES(seed), c.modes.CTR(b"\0" * 16)).encryptor().update(b"\0" * (8 * size))
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64, copy=False)  # read-only: callers add it


class KeyPair:
    """A fresh X25519 key pair: its raw 32-byte public key, and its private key as raw bytes for sharing."""

    def __init__(self, private: bytes | None = None) -> None:
        x25519 = primitives().x25519
        if private is None:
            self._key = x25519.X25519PrivateKey.generate()
        else:
            self._key = x25519.X25519PrivateKey.from_private_bytes(private)

    @property
    def public(self) -> bytes:
        ser = primitives().serialization
        return self._key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)

    @property
    def private(self) -> bytes:
        ser = primitives().serialization
        return self._key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())

    def exchange(self, peer_public: bytes) -> bytes:
        return self._key.exchange(primitives().x25519.X25519PublicKey.from_public_bytes(peer_public))


def agree(keys: KeyPair, peer_public: bytes, info: bytes) -> bytes:
    """32 bytes both ends derive: HKDF-SHA256 over the X25519 shared secret, bound to ``info``."""
    c = primitives()
    shared = keys.exchange(peer_public)
    return c.HKDF(algorithm=c.hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def pair_seed(keys: KeyPair, me: int, peer: int, peer_public: bytes, context: bytes) -> bytes:
    """The seed of the pair mask of clients ``me`` and ``peer`` in the round ``context`` names (same at both ends)."""
    low, high = sorted((me, peer))
    return agree(keys, peer_public, b"modelyard secure aggregation|" + context + b"|%d|%d" % (low, high))


def add_pair_mask(
    total: np.ndarray, keys: KeyPair, me: int, peer: int, peer_public: bytes, context: bytes, *, remove: bool = False
) -> None:
    """Add to ``total`` (in place, mod 2^64) what client ``me`` adds for its pair with ``peer``: the pair's mask
    if ``peer > me``, else its negation; ``remove`` takes that off again."""
    mask = prg(pair_seed(keys, me, peer, peer_public, context), total.shape[0])
    if (peer > me) != remove:
        total += mask
    else:
        total -= mask
