"""A record's data key split so that no single custodian can open the record.

The writer splits the 32-byte AES key with Shamir's secret sharing (PyCryptodome's
``Shamir`` over GF(2^128), one split per 16-byte half, both halves at the same
x-coordinate): share ``i`` (1-based, the custodian's place in the anchor) is 32
bytes, and any ``threshold`` shares give the key back while fewer tell nothing
about it. Each share is sealed (HPKE) to one custodian, and the ledger anchors a
salted SHA-256 of each share, so a custodian checks the share it is given, and a
reader checks each share a custodian hands it, before trusting them: a custodian
that lies is caught, not combined.

A custodian never unseals another custodian's share; it re-seals its own share to
an authorised reader, who combines ``threshold`` of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from Cryptodome.Protocol.SecretSharing import Shamir

from p2pmed import codec
from p2pmed.crypto import DATA_KEY_SIZE, CryptoError, EncryptionPrivateKey, EncryptionPublicKey, open_sealed, seal_to

__all__ = ["SHARE_SIZE", "combine", "share_digest", "split", "unwrap_share", "wrap_share"]

SHARE_SIZE = DATA_KEY_SIZE
SHARE_WRAP_SIZE_MAX = 2048
"""Larger than an HPKE-sealed share under either KEM (ML-KEM-768 + X25519: 1,120-byte encapsulation)."""
_HALF = DATA_KEY_SIZE // 2
_DIGEST_CONTEXT = b"p2pmed-key-share-digest-v1\x00"
_WRAP_INFO_PREFIX = b"p2pmed-key-share-wrap-v1\x00"


@dataclass(frozen=True)
class _SealedShare:
    index: int
    share: bytes


def split(data_key: bytes, threshold: int, count: int) -> tuple[bytes, ...]:
    """``count`` shares of ``data_key``, any ``threshold`` of which rebuild it; share ``i`` is at x = i + 1."""
    if len(data_key) != DATA_KEY_SIZE:
        raise ValueError(f"data key must be {DATA_KEY_SIZE} bytes, got {len(data_key)}")
    if not 1 <= threshold <= count <= 255:
        raise ValueError(f"need 1 <= threshold <= count <= 255, got threshold {threshold} of {count}")
    low = Shamir.split(threshold, count, data_key[:_HALF], ssss=False)
    high = Shamir.split(threshold, count, data_key[_HALF:], ssss=False)
    return tuple(low_share + high_share for (_, low_share), (_, high_share) in zip(low, high, strict=True))


def combine(shares: Mapping[int, bytes]) -> bytes:
    """The data key from shares by 1-based index; give exactly as many as the threshold, each checked
    against its digest first (interpolating through a wrong share gives a wrong key, not an error)."""
    if not shares or any(len(share) != SHARE_SIZE for share in shares.values()):
        raise CryptoError(f"give at least one share, each {SHARE_SIZE} bytes")
    low = Shamir.combine([(index, share[:_HALF]) for index, share in shares.items()], ssss=False)
    high = Shamir.combine([(index, share[_HALF:]) for index, share in shares.items()], ssss=False)
    return bytes(low + high)


def share_digest(record_id: bytes, index: int, share: bytes) -> bytes:
    """What the anchor holds for share ``index``: the share itself has 256 bits of entropy, so its
    hash reveals nothing; the record id and index keep one digest from standing for another."""
    return hashlib.sha256(_DIGEST_CONTEXT + record_id + index.to_bytes(1, "big") + share).digest()


def wrap_share(share: bytes, index: int, recipient: EncryptionPublicKey, record_id: bytes) -> bytes:
    """Seal share ``index`` to ``recipient`` (a custodian, or a reader), bound to ``record_id``."""
    return seal_to(recipient, codec.encode(_SealedShare(index, share)), _WRAP_INFO_PREFIX + record_id)


def unwrap_share(wrapped: bytes, key: EncryptionPrivateKey, record_id: bytes) -> tuple[int, bytes]:
    """``(index, share)`` from a sealed share; ``CryptoError`` if it does not open or is malformed."""
    if len(wrapped) > SHARE_WRAP_SIZE_MAX:
        raise CryptoError(f"a sealed share has at most {SHARE_WRAP_SIZE_MAX} bytes, this one {len(wrapped)}")
    opened = open_sealed(wrapped, key, _WRAP_INFO_PREFIX + record_id)
    try:
        sealed = codec.decode(_SealedShare, opened, 256)
    except codec.CodecError as error:
        raise CryptoError(f"the sealed share is malformed: {error}") from None
    if not 1 <= sealed.index <= 255 or len(sealed.share) != SHARE_SIZE:
        raise CryptoError(f"the sealed share is malformed: index {sealed.index}, {len(sealed.share)} bytes")
    return sealed.index, sealed.share
