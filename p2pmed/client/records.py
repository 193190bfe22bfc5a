"""The client side of record sharing: sign, encrypt, wrap, decrypt. Keys never leave it.

Writing: encrypt the record under a fresh data key, commit its anchor
(``record.add``) naming f+1 custodians (the node's own site first), then hand
each custodian the ciphertext and the data key wrapped to that custodian
(``record.store``). Reading: commit a ``record.read`` (the ledger decides), then
fetch the ciphertext and a wrap to the reader's key (``record.fetch``) and open
both locally. Every function talks to one node over its RPC socket.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from p2pmed import codec
from p2pmed.client.tx import sign_next, wait_decided
from p2pmed.crypto import (
    CryptoError,
    EncryptionPrivateKey,
    EncryptionPublicKey,
    Kem,
    SigningKey,
    decrypt_record,
    encrypt_record,
    open_sealed,
    seal_to,
    unwrap_key,
    wrap_key,
)
from p2pmed.ledger.contracts.records import RecordAdd, RecordRead
from p2pmed.quorum import fault_tolerance
from p2pmed.rpc.client import RpcClient, RpcError

__all__ = [
    "CustodyFailed",
    "LedgerRefused",
    "WrittenRecord",
    "open_reason",
    "read_record",
    "seal_reason",
    "submit",
    "write_record",
]


@dataclass
class LedgerRefused(Exception):
    """The ledger committed the transaction as refused."""

    tx_type: str
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.tx_type} refused: {self.reason}: {self.detail}"


def submit(client: RpcClient, key: SigningKey, tx_type: str, body: Any, timeout_s: float = 30.0) -> dict[str, Any]:
    """Sign ``body`` as ``tx_type`` with the sender's next nonce, submit it and wait until it
    commits; returns ``tx.get``'s answer, or raises ``LedgerRefused`` / ``TimeoutError``."""
    tx = sign_next(client, key, tx_type, body)
    client.call("tx.submit", tx=tx.encoded.hex())
    answer = wait_decided(client, tx, timeout_s)
    if answer is None:
        raise TimeoutError(f"{tx.type} {tx.id.hex()[:16]} did not commit within {timeout_s:g} s")
    if answer["status"] == "rejected":
        raise LedgerRefused(tx.type, answer["reason"], answer["detail"])
    return answer


@dataclass(frozen=True)
class WrittenRecord:
    record_id: bytes
    stored: tuple[str, ...]
    """The custodians (monikers) that took the ciphertext now."""
    failed: dict[str, str]
    """Those that did not, and why; each fetches its copy from another custodian later."""


def write_record(
    client: RpcClient, writer: SigningKey, patient: bytes, category: str, plaintext: bytes
) -> WrittenRecord:
    """Encrypt and share a record for ``patient``. Raises ``CustodyFailed`` if no custodian
    took the ciphertext (the anchor is then committed but its content is nowhere)."""
    status = client.call("node.status")
    sites = client.call("record.custodians")
    count = fault_tolerance(len(sites)) + 1
    own = status["validator_index"]
    chosen = [sites[(own + offset) % len(sites)] for offset in range(count)]
    record_id = os.urandom(32)
    data_key, sealed = encrypt_record(record_id, plaintext)
    anchor = RecordAdd(
        record_id,
        patient,
        category,
        hashlib.sha256(sealed).digest(),
        len(sealed),
        tuple(bytes.fromhex(site["key"]) for site in chosen),
    )
    submit(client, writer, "record.add", anchor)
    stored, failed = [], {}
    for site in chosen:
        custodian_key = EncryptionPublicKey(Kem.X25519, bytes.fromhex(site["encryption_key"]))
        try:
            client.call(
                "record.store",
                record_id=record_id.hex(),
                custodian=site["key"],
                sealed=sealed.hex(),
                wrap=wrap_key(data_key, custodian_key, record_id).hex(),
            )
            stored.append(site["moniker"])
        except RpcError as error:
            failed[site["moniker"]] = error.message
    if not stored:
        raise CustodyFailed(record_id, failed)
    return WrittenRecord(record_id, tuple(stored), failed)


@dataclass
class CustodyFailed(Exception):
    """No custodian took a record's ciphertext."""

    record_id: bytes
    failed: dict[str, str]

    def __str__(self) -> str:
        return f"no custodian took record {self.record_id.hex()[:16]}: " + "; ".join(
            f"{k}: {v}" for k, v in self.failed.items()
        )


REASON_INFO = b"p2pmed-break-glass-reason-v1\x00"
REASON_LENGTH_MAX = 500


@dataclass(frozen=True)
class SealedReason:
    salt: bytes
    reason: str


def seal_reason(
    reason: str, record_id: bytes, recipients: Sequence[EncryptionPublicKey]
) -> tuple[bytes, tuple[bytes, ...]]:
    """A break-glass reason for the ledger: its salted SHA-256 (the salt keeps a short reason from
    being guessed from its hash) and the reason with the salt, sealed to each recipient."""
    if not reason.strip() or len(reason) > REASON_LENGTH_MAX:
        raise ValueError(f"breaking the glass needs a stated reason of 1..{REASON_LENGTH_MAX} characters")
    salt = os.urandom(16)
    digest = hashlib.sha256(salt + reason.encode()).digest()
    plaintext = codec.encode(SealedReason(salt, reason))
    return digest, tuple(seal_to(recipient, plaintext, REASON_INFO + record_id) for recipient in recipients)


def open_reason(sealed: bytes, key: EncryptionPrivateKey, record_id: bytes, digest: bytes) -> str:
    """The reason a recipient's copy holds, checked against the SHA-256 on the ledger."""
    opened = codec.decode(SealedReason, open_sealed(sealed, key, REASON_INFO + record_id), 1 << 16)
    if hashlib.sha256(opened.salt + opened.reason.encode()).digest() != digest:
        raise CryptoError("the sealed reason does not match the SHA-256 on the ledger")
    return opened.reason


def _reason_recipients(client: RpcClient, reader: SigningKey, record_id: bytes) -> list[EncryptionPublicKey]:
    """The patient's encryption key and that of the organisation the reader works for."""
    anchor = client.call("record.get", record_id=record_id.hex())
    patient = client.call("identity.person", id_or_key=anchor["patient"])
    employer = client.call("identity.person", id_or_key=reader.public_key.hex())["organisation"]
    organisation = client.call("identity.organisation", key=employer)
    return [_public_key(patient["encryption_key"]), _public_key(organisation["encryption_key"])]


def _public_key(rendered: dict[str, Any]) -> EncryptionPublicKey:
    return EncryptionPublicKey(Kem(rendered["kem"]), bytes.fromhex(rendered["key"]))


def read_record(
    client: RpcClient,
    reader: SigningKey,
    reader_encryption: EncryptionPrivateKey,
    record_id: bytes,
    purpose: str = "TREAT",
    break_glass_reason: str = "",
) -> bytes:
    """Ask the ledger for access (a break-glass read when a reason is given, sealed to the patient
    and the reader's organisation), then fetch and open."""
    if break_glass_reason:
        recipients = _reason_recipients(client, reader, record_id)
        digest, sealed = seal_reason(break_glass_reason, record_id, recipients)
        request = RecordRead(record_id, purpose, True, digest, sealed)
    else:
        request = RecordRead(record_id, purpose, False)
    submit(client, reader, "record.read", request)
    served = client.call("record.fetch", record_id=record_id.hex(), reader=reader.public_key.hex())
    data_key = unwrap_key(bytes.fromhex(served["wrap"]), reader_encryption, record_id)
    return decrypt_record(record_id, bytes.fromhex(served["sealed"]), data_key)
