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
from dataclasses import dataclass
from typing import Any

from p2pmed.client.tx import sign_next, wait_decided
from p2pmed.crypto import (
    EncryptionPrivateKey,
    EncryptionPublicKey,
    Kem,
    SigningKey,
    decrypt_record,
    encrypt_record,
    unwrap_key,
    wrap_key,
)
from p2pmed.ledger.contracts.records import RecordAdd, RecordRead
from p2pmed.quorum import fault_tolerance
from p2pmed.rpc.client import RpcClient, RpcError

__all__ = ["CustodyFailed", "LedgerRefused", "WrittenRecord", "read_record", "submit", "write_record"]


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


def read_record(
    client: RpcClient,
    reader: SigningKey,
    reader_encryption: EncryptionPrivateKey,
    record_id: bytes,
    purpose: str = "TREAT",
    break_glass_reason: str = "",
) -> bytes:
    """Ask the ledger for access (a break-glass read when a reason is given), then fetch and open."""
    submit(client, reader, "record.read", RecordRead(record_id, purpose, bool(break_glass_reason), break_glass_reason))
    served = client.call("record.fetch", record_id=record_id.hex(), reader=reader.public_key.hex())
    data_key = unwrap_key(bytes.fromhex(served["wrap"]), reader_encryption, record_id)
    return decrypt_record(record_id, bytes.fromhex(served["sealed"]), data_key)
