"""The signed transaction envelope.

A transaction is ``(type, chain_id, sender, nonce, body, signature)``. ``sender``
is the signer's Ed25519 public key, ``nonce`` counts that sender's transactions
from 0 (replay protection: the ledger accepts only the next one), ``body`` is the
type's own map, decoded strictly by the ledger rules for that type. The signature
covers the canonical encoding of every other field, under the ``transaction``
signature domain and the chain id. The tx id is the SHA-256 of the whole
canonical encoding, signature included (Ed25519 as verified here is not
malleable, so one transaction has one id).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from p2pmed import codec
from p2pmed.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SignatureDomain, SigningKey, verify
from p2pmed.ledger.errors import RejectReason, TxRejected

__all__ = ["Transaction", "UnsignedTransaction", "decode_transaction", "sign_transaction"]

NONCE_MAX = (1 << 63) - 1
TYPE_LENGTH_MAX = 64
CHAIN_ID_LENGTH_MAX = 64


@dataclass(frozen=True)
class UnsignedTransaction:
    type: str
    chain_id: str
    sender: bytes
    nonce: int
    body: Any

    def __post_init__(self) -> None:
        if not 0 < len(self.type) <= TYPE_LENGTH_MAX:
            raise ValueError(f"type must be 1..{TYPE_LENGTH_MAX} characters")
        if not 0 < len(self.chain_id) <= CHAIN_ID_LENGTH_MAX:
            raise ValueError(f"chain_id must be 1..{CHAIN_ID_LENGTH_MAX} characters")
        if len(self.sender) != PUBLIC_KEY_SIZE:
            raise ValueError(f"sender must be a {PUBLIC_KEY_SIZE}-byte public key, got {len(self.sender)} bytes")
        if not 0 <= self.nonce <= NONCE_MAX:
            raise ValueError(f"nonce must be in 0..{NONCE_MAX}")
        if not isinstance(self.body, dict):
            raise ValueError("body must be a map")


@dataclass(frozen=True, eq=False)
class Transaction(UnsignedTransaction):
    signature: bytes

    CODEC_CACHE = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.signature) != SIGNATURE_SIZE:
            raise ValueError(f"signature must be {SIGNATURE_SIZE} bytes, got {len(self.signature)}")

    @functools.cached_property
    def encoded(self) -> bytes:
        return codec.encode(self)

    @functools.cached_property
    def id(self) -> bytes:
        return hashlib.sha256(self.encoded).digest()

    def signing_payload(self) -> bytes:
        unsigned = UnsignedTransaction(self.type, self.chain_id, self.sender, self.nonce, self.body)
        return codec.encode(unsigned)

    def signature_is_valid(self) -> bool:
        return verify(self.sender, self.signature, SignatureDomain.TRANSACTION, self.chain_id, self.signing_payload())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transaction) and self.encoded == other.encoded

    def __hash__(self) -> int:
        return hash(self.id)


def sign_transaction(key: SigningKey, chain_id: str, type: str, nonce: int, body: Any) -> Transaction:
    """Build and sign a transaction; ``body`` is a dataclass or a plain map."""
    unsigned = UnsignedTransaction(type, chain_id, key.public_key, nonce, codec.to_value(body))
    signature = key.sign(SignatureDomain.TRANSACTION, chain_id, codec.encode(unsigned))
    return Transaction(unsigned.type, chain_id, unsigned.sender, nonce, unsigned.body, signature)


def decode_transaction(data: bytes) -> Transaction:
    """Decode untrusted bytes into a transaction; raise ``TxRejected`` (malformed / too big)."""
    if len(data) > codec.TX_SIZE_MAX:
        raise TxRejected(RejectReason.TOO_BIG, f"{len(data)} bytes, limit {codec.TX_SIZE_MAX}")
    try:
        tx = codec.decode(Transaction, data, codec.TX_SIZE_MAX)
    except codec.CodecError as error:
        raise TxRejected(RejectReason.MALFORMED, str(error)) from None
    tx.__dict__["encoded"] = bytes(data)
    return tx
