"""The client side of record sharing: sign, encrypt, wrap, decrypt. Keys never leave it.

Writing: pad and encrypt the record under a fresh data key, split the key into
one share per custodian (2f+1 custodians, the node's own site first; any f+1
shares open it), commit the anchor with a digest of each share (``record.add``),
then hand each custodian the ciphertext and every share sealed to its custodian
(``record.store``). Reading: commit a ``record.read`` (the ledger decides), sign
a read request, have the custodians re-seal their shares to the reader's key
(``record.fetch``), check each share against the anchor, combine f+1 of them and
decrypt, all locally. Every function talks to one node over its RPC socket.
"""

from __future__ import annotations

import hashlib
import os
import time
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
    SignatureDomain,
    SigningKey,
    decrypt_record,
    encrypt_record,
    open_sealed,
    seal_to,
)
from p2pmed.key_shares import combine, share_digest, split, unwrap_share, wrap_share
from p2pmed.ledger.contracts.records import RecordAdd, RecordRead
from p2pmed.net.blob_protocol import ReadRequest, SealedShares, SignedReadRequest
from p2pmed.quorum import fault_tolerance
from p2pmed.rpc.client import RpcClient, RpcError

__all__ = [
    "CustodyFailed",
    "LedgerRefused",
    "SealedRecord",
    "WrittenRecord",
    "fetch_record",
    "open_reason",
    "read_record",
    "seal_reason",
    "seal_record",
    "sign_read_request",
    "store_record",
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


@dataclass(frozen=True)
class SealedRecord:
    """A record encrypted and split for its custodians, before its anchor commits."""

    anchor: RecordAdd
    sealed: bytes
    wraps: tuple[bytes, ...]
    custodians: tuple[dict[str, Any], ...]
    """``record.custodians`` entries, in the order of the anchor's."""


def seal_record(client: RpcClient, patient: bytes, category: str, plaintext: bytes) -> SealedRecord:
    """Pad and encrypt ``plaintext`` under a fresh data key and split the key for 2f+1
    custodians (the node's own site first), each share sealed to its custodian."""
    status = client.call("node.status")
    sites = client.call("record.custodians")
    faulty = fault_tolerance(len(sites))
    own = status["validator_index"]
    chosen = tuple(sites[(own + offset) % len(sites)] for offset in range(2 * faulty + 1))
    record_id = os.urandom(32)
    data_key, sealed = encrypt_record(record_id, plaintext)
    shares = split(data_key, faulty + 1, len(chosen))
    anchor = RecordAdd(
        record_id,
        patient,
        category,
        hashlib.sha256(sealed).digest(),
        len(sealed),
        tuple(bytes.fromhex(site["key"]) for site in chosen),
        faulty + 1,
        tuple(share_digest(record_id, index, share) for index, share in enumerate(shares, 1)),
    )
    wraps = tuple(
        wrap_share(
            share, index, EncryptionPublicKey(Kem(site["kem"]), bytes.fromhex(site["encryption_key"])), record_id
        )
        for index, (share, site) in enumerate(zip(shares, chosen, strict=True), 1)
    )
    return SealedRecord(anchor, sealed, wraps, chosen)


def store_record(client: RpcClient, record: SealedRecord) -> WrittenRecord:
    """After its anchor committed: hand each custodian the ciphertext and the sealed shares.
    Raises ``CustodyFailed`` if none took it (its content is then nowhere)."""
    record_id = record.anchor.record_id
    stored, failed = [], {}
    for site in record.custodians:
        try:
            client.call(
                "record.store",
                record_id=record_id.hex(),
                custodian=site["key"],
                sealed=record.sealed.hex(),
                shares=codec.encode(SealedShares(record.wraps)).hex(),
            )
            stored.append(site["moniker"])
        except RpcError as error:
            failed[site["moniker"]] = error.message
    if not stored:
        raise CustodyFailed(record_id, failed)
    return WrittenRecord(record_id, tuple(stored), failed)


def write_record(
    client: RpcClient, writer: SigningKey, patient: bytes, category: str, plaintext: bytes
) -> WrittenRecord:
    """Encrypt and share a record for ``patient``. Raises ``CustodyFailed`` if no custodian
    took the ciphertext (the anchor is then committed but its content is nowhere)."""
    record = seal_record(client, patient, category, plaintext)
    submit(client, writer, "record.add", record.anchor)
    return store_record(client, record)


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
    return fetch_record(client, reader, reader_encryption, record_id)


def sign_read_request(key: SigningKey, chain_id: str, record_id: bytes) -> SignedReadRequest:
    """The request custodians serve a reader for: signed by the reader, now."""
    request = ReadRequest(record_id, key.public_key, int(time.time() * 1000))
    return SignedReadRequest(request, key.sign(SignatureDomain.RECORD_FETCH, chain_id, codec.encode(request)))


def fetch_record(
    client: RpcClient, reader: SigningKey, reader_encryption: EncryptionPrivateKey, record_id: bytes
) -> bytes:
    """After the reader's ``record.read`` has committed: collect the custodians' shares, check each
    against the anchor's digest (a custodian that lies is left out), combine and decrypt."""
    anchor = client.call("record.get", record_id=record_id.hex())
    digests = [bytes.fromhex(digest) for digest in anchor["share_sha256"]]
    read = sign_read_request(reader, client.call("node.status")["chain_id"], record_id)
    served = client.call("record.fetch", request=codec.encode(read).hex())
    shares: dict[int, bytes] = {}
    for answer in served["shares"]:
        try:
            index, share = unwrap_share(bytes.fromhex(answer["wrap"]), reader_encryption, record_id)
        except CryptoError:
            continue
        if 1 <= index <= len(digests) and share_digest(record_id, index, share) == digests[index - 1]:
            shares[index] = share
    if len(shares) < anchor["threshold"]:
        raise CryptoError(
            f"only {len(shares)} of the {anchor['threshold']} key shares needed opened and matched the anchor"
        )
    data_key = combine(dict(sorted(shares.items())[: anchor["threshold"]]))
    return decrypt_record(record_id, bytes.fromhex(served["sealed"]), data_key)
