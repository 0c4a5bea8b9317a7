"""Secure aggregation by pairwise additive masking (Bonawitz et al. 2017, without dropout recovery).

"Practical Secure Aggregation for Privacy-Preserving Machine Learning" (CCS 2017), the masking
step of its protocol: every pair (i, j) of a round's clients agrees on a key by X25519
Diffie-Hellman over their public keys (the server only relays public keys), stretches it with
HKDF-SHA256 into a seed, and expands the seed into a mask vector with AES-256 in CTR mode.
Client i adds the masks it shares with every j > i and subtracts those with every j < i, so the
masks cancel in the sum of all clients' vectors and nothing else. Arithmetic is on a fixed-point
encoding mod 2^64: x becomes round(x * 2^FRACTION_BITS) as a two's complement 64-bit integer,
so the masks cancel exactly and only the encoding's rounding remains: each coordinate of the
decoded sum of m vectors is within m * 2^-(FRACTION_BITS + 1) of the true sum.

Not covered (docs/federated.md): a client that drops out after masking leaves its pair masks
in the sum, and the round fails (the paper's Shamir-shared seeds recover them); the server is
trusted to relay public keys faithfully (no signatures against a man in the middle), and a
server that colludes with all clients but one learns that one's update from the sum.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from modelyard.errors import DataError, optional_dependency

__all__ = ["FRACTION_BITS", "MaskingClient", "check_installed", "decode", "encode", "unmask_sum"]

FRACTION_BITS = 32  # 2^-33 rounding per coordinate; sums up to 2^31 in magnitude fit in 64 bits
_LIMIT = float(2 ** (63 - FRACTION_BITS))  # |sum of the round's vectors| must stay below this


def _crypto() -> Any:
    """The ``cryptography`` primitives used here (extra ``modelyard[privacy]``), imported on first use."""
    with optional_dependency("privacy", "secure aggregation (federated.secure_aggregation)"):
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import x25519
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return SimpleNamespace(
        hashes=hashes,
        serialization=serialization,
        x25519=x25519,
        Cipher=Cipher,
        algorithms=algorithms,
        modes=modes,
        HKDF=HKDF,
    )


def check_installed() -> None:
    """The one-line missing-extra error (``modelyard[privacy]``) now, before a run exists."""
    _crypto()


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


def _mask(seed: bytes, size: int) -> np.ndarray:
    """``size`` uniform uint64 numbers: the AES-256-CTR keystream of ``seed`` (a PRG, as in the paper)."""
    c = _crypto()
    stream = c.Cipher(c.algorithms.AES(seed), c.modes.CTR(b"\0" * 16)).encryptor().update(b"\0" * (8 * size))
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64)


class MaskingClient:
    """One client's side of a round: a fresh X25519 key pair and the masking of its vector."""

    def __init__(self, index: int) -> None:
        self.index = index
        self._key = _crypto().x25519.X25519PrivateKey.generate()

    @property
    def public_key(self) -> bytes:
        ser = _crypto().serialization
        return self._key.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)

    def _seed(self, peer: int, peer_key: bytes, context: bytes) -> bytes:
        c = _crypto()
        shared = self._key.exchange(c.x25519.X25519PublicKey.from_public_bytes(peer_key))
        low, high = sorted((self.index, peer))
        info = b"modelyard secure aggregation|" + context + b"|%d|%d" % (low, high)
        return c.HKDF(algorithm=c.hashes.SHA256(), length=32, salt=None, info=info).derive(shared)

    def mask(self, vector: np.ndarray, public_keys: dict[int, bytes], *, context: bytes) -> np.ndarray:
        """``vector`` encoded, plus the masks shared with later clients, minus those with earlier ones (mod 2^64).

        ``public_keys`` holds every client of the round (this one included); ``context`` names the round,
        so the same key pair never yields the same masks twice.
        """
        out = encode(vector, parties=len(public_keys))
        for peer, key in sorted(public_keys.items()):
            if peer == self.index:
                continue
            mask = _mask(self._seed(peer, key, context), out.shape[0])
            if peer > self.index:
                out += mask  # uint64 arithmetic wraps: mod 2^64
            else:
                out -= mask
        return out


def unmask_sum(masked: list[np.ndarray]) -> np.ndarray:
    """The server's whole view: the masked vectors of a round in, the decoded sum of the clients' vectors out."""
    total = np.zeros_like(masked[0])
    for vector in masked:
        total += vector
    return decode(total)
