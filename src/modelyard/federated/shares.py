"""Shamir t-of-n shares of a client's 32-byte round secrets, and the envelopes that carry them.

Secure aggregation's dropout recovery (Bonawitz et al. 2017, ShareKeys) secret-shares each
client's pair-mask private key and self-mask seed among the round's clients. The sharing is
pycryptodome's ``Crypto.Protocol.SecretSharing.Shamir`` (Shamir's scheme over GF(2^128)), which
shares 16-byte secrets: a 32-byte secret is shared as its two halves, each with its own random
polynomial, and a holder's share is the two half-shares at the same x. Fewer than ``t`` shares
say nothing of a half (Shamir's perfect secrecy), so nothing of the secret.

A share travels to its holder through the server in an envelope: AES-256-GCM (``cryptography``)
under a key both ends derive from their channel X25519 keys, with the round, the sender and the
holder as associated data, so the server can neither read a share nor pass one off as another's.
"""

from __future__ import annotations

import os
import struct
from typing import Any

from modelyard.errors import optional_dependency
from modelyard.federated.secure import KeyPair, agree, primitives

__all__ = ["SECRET_BYTES", "check_installed", "split", "combine", "seal", "unseal", "channel_key"]

SECRET_BYTES = 32
_HALF = 16  # pycryptodome's Shamir shares 16-byte secrets


def _shamir() -> Any:
    with optional_dependency("privacy", "secure aggregation's dropout recovery (federated.secure_aggregation)"):
        from Crypto.Protocol.SecretSharing import Shamir
    return Shamir


def check_installed() -> None:
    """The one-line missing-extra error (``modelyard[privacy]``) now, before a run exists."""
    primitives()
    _shamir()


def split(secret: bytes, threshold: int, holders: int) -> list[tuple[int, bytes]]:
    """``holders`` shares ``(x, 32 bytes)`` at x = 1..holders; any ``threshold`` of them give ``secret`` back."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"expected a {SECRET_BYTES}-byte secret, received {len(secret)} bytes")
    shamir = _shamir()
    low = shamir.split(threshold, holders, secret[:_HALF])
    high = shamir.split(threshold, holders, secret[_HALF:])
    return [(x, a + b) for (x, a), (x2, b) in zip(low, high) if x == x2]


def combine(shares: list[tuple[int, bytes]]) -> bytes:
    """The secret from ``threshold`` or more shares (fewer give a wrong secret: the caller counts them)."""
    shamir = _shamir()
    low = shamir.combine([(x, s[:_HALF]) for x, s in shares])
    high = shamir.combine([(x, s[_HALF:]) for x, s in shares])
    return low + high


def channel_key(keys: KeyPair, peer_public: bytes, context: bytes, sender: int, holder: int) -> bytes:
    """The AES-GCM key of the envelopes from ``sender`` to ``holder`` (both ends derive it)."""
    return agree(keys, peer_public, b"modelyard share envelope|" + context + b"|%d|%d" % (sender, holder))


def _aad(context: bytes, sender: int, holder: int) -> bytes:
    return b"modelyard share|" + context + struct.pack(">QQ", sender, holder)


def seal(key: bytes, plaintext: bytes, *, context: bytes, sender: int, holder: int) -> bytes:
    """``nonce || ciphertext || tag`` of ``plaintext`` for ``holder``."""
    nonce = os.urandom(12)
    return nonce + primitives().AESGCM(key).encrypt(nonce, plaintext, _aad(context, sender, holder))


def unseal(key: bytes, envelope: bytes, *, context: bytes, sender: int, holder: int) -> bytes | None:
    """The plaintext, or None when the envelope was not sealed by ``sender`` for ``holder`` in this round."""
    c = primitives()
    if len(envelope) < 12 + 16:
        return None
    try:
        return c.AESGCM(key).decrypt(envelope[:12], envelope[12:], _aad(context, sender, holder))
    except c.InvalidTag:
        return None
