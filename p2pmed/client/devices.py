"""The client side of device readings: a batch sealed as a record with its Merkle root
anchored, read back and checked against the anchor, and one reading proved on its own.

A batch's plaintext is a ``ReadingBatch``: the device, the batch number and the readings,
each a FHIR Observation as canonical JSON with 16 random bytes of salt. The Merkle tree
(``p2pmed.merkle_log``) is over the canonical CBOR of each ``Reading``: the salt makes
every leaf unguessable, so the root on the ledger, and the sibling hashes in a proof,
tell nothing about a reading (a heart rate has a hundred likely values; a hash of one
without salt is a lookup away).

A reading proof (``prove_reading``) is a JSON document anyone checks offline
(``verify_reading_proof``): the reading and its salt, its index, the batch size, the
sibling hashes and the root; and, when the node gave one, the ``state.proof`` answer for
the batch anchor, which ties the root to a block certified by a quorum of the validators
it names. Those validators are the node's claim: the checker compares them with its own
view of the chain (``p2pmed.consensus.state_proof``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from p2pmed import codec, merkle_log
from p2pmed.client.records import read_record, seal_record, store_record, submit
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.state_proof import ProofRefused, decode_state_proof, verify_state_proof
from p2pmed.crypto import PUBLIC_KEY_SIZE, Ed25519Verifier, EncryptionPrivateKey, SigningKey
from p2pmed.interop.fhir import canonical_json
from p2pmed.interop.fhir_devices import Readings, udi_reference
from p2pmed.ledger.contracts.devices import BatchAnchor, DeviceBatch, batch_key, udi_text
from p2pmed.ledger.contracts.records import SIZE_MAX
from p2pmed.ledger.state import STATE_VALUE_SIZE_MAX
from p2pmed.rpc.client import RpcClient, RpcError
from p2pmed.rpc.errors import ErrorCode

__all__ = [
    "PROOF_FORMAT",
    "BatchMismatch",
    "Reading",
    "ReadingBatch",
    "SentBatch",
    "VerifiedReading",
    "anchor_state_proof",
    "prove_reading",
    "read_batch",
    "readings_root",
    "send_batch",
    "verify_reading_proof",
]

PROOF_FORMAT = "p2pmed-reading-proof-1"
PROOF_POLL_S = 0.2
SALT_SIZE = 16


@dataclass(frozen=True)
class Reading:
    salt: bytes
    observation: bytes
    """A FHIR Observation, canonical JSON."""


@dataclass(frozen=True)
class ReadingBatch:
    gtin: str
    serial: str
    sequence: int
    readings: tuple[Reading, ...]


@dataclass(frozen=True)
class SentBatch:
    sequence: int
    record_id: bytes
    readings_root: bytes
    height: int
    stored: tuple[str, ...]
    failed: dict[str, str]


class BatchMismatch(Exception):
    """A batch record that is not what its anchor says: the device or gateway that sent it is faulty."""


def readings_root(readings: tuple[Reading, ...]) -> bytes:
    return merkle_log.root([codec.encode(reading) for reading in readings])


def send_batch(client: RpcClient, signer: SigningKey, gtin: str, serial: str, readings: Readings) -> SentBatch:
    """Seal ``readings`` as the patient's record and anchor them as the device's next batch,
    signed by ``signer`` (the device, or a gateway of its organisation); then hand the record
    to its custodians. Raises ``ValueError`` for a batch too big for one record."""
    registered = client.call("device.get", gtin=gtin, serial=serial)
    sequence = registered["batches"] + 1
    salted = tuple(Reading(os.urandom(SALT_SIZE), observation) for observation in readings.observations)
    plaintext = codec.encode(ReadingBatch(gtin, serial, sequence, salted))
    record = seal_record(client, readings.patient, readings.category, plaintext)
    if len(record.sealed) > SIZE_MAX:
        raise ValueError(
            f"the batch seals to {len(record.sealed)} bytes, more than a record holds: send fewer readings"
        )
    root = readings_root(salted)
    answer = submit(
        client, signer, "device.batch", DeviceBatch(gtin, serial, sequence, len(salted), root, record.anchor)
    )
    written = store_record(client, record)
    return SentBatch(sequence, record.anchor.record_id, root, answer["height"], written.stored, written.failed)


def read_batch(
    client: RpcClient,
    reader: SigningKey,
    reader_encryption: EncryptionPrivateKey,
    gtin: str,
    serial: str,
    sequence: int,
    purpose: str = "TREAT",
) -> tuple[ReadingBatch, dict[str, Any]]:
    """Read a batch as a record (the ledger decides and audits) and check it against its
    anchor; returns the batch and the anchor (``device.batch``'s answer)."""
    anchor = client.call("device.batch", gtin=gtin, serial=serial, sequence=sequence)
    plaintext = read_record(client, reader, reader_encryption, bytes.fromhex(anchor["record_id"]), purpose)
    try:
        batch = codec.decode(ReadingBatch, plaintext, SIZE_MAX)
    except codec.CodecError as error:
        raise BatchMismatch(f"the record of batch {sequence} is not a batch of readings: {error}") from None
    if (batch.gtin, batch.serial, batch.sequence) != (gtin, serial, sequence):
        raise BatchMismatch(f"the record of batch {sequence} names another batch")
    if len(batch.readings) != anchor["readings"] or readings_root(batch.readings).hex() != anchor["readings_root"]:
        raise BatchMismatch(f"the readings of batch {sequence} do not match the Merkle root anchored on the ledger")
    return batch, anchor


def anchor_state_proof(client: RpcClient, anchor: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    """``state.proof`` of a batch anchor in the state after its block, once a later certified
    block commits to that state (the next block or so); ``TimeoutError`` if none does in time."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            answer: dict[str, Any] = client.call("state.proof", key=anchor["key"], height=anchor["height"])
            return answer
        except RpcError as error:
            if error.code != ErrorCode.NOT_FOUND or time.monotonic() > deadline:
                raise
        time.sleep(PROOF_POLL_S)


def prove_reading(
    batch: ReadingBatch, index: int, chain_id: str, state_proof: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The proof document of reading ``index`` of ``batch`` (see the module docstring)."""
    entries = [codec.encode(reading) for reading in batch.readings]
    reading = batch.readings[index]
    document = {
        "format": PROOF_FORMAT,
        "chain_id": chain_id,
        "gtin": batch.gtin,
        "serial": batch.serial,
        "sequence": batch.sequence,
        "index": index,
        "readings": len(entries),
        "salt": reading.salt.hex(),
        "observation": json.loads(reading.observation),
        "path": [sibling.hex() for sibling in merkle_log.inclusion_proof(entries, index)],
        "readings_root": merkle_log.root(entries).hex(),
    }
    if state_proof is not None:
        document["state_proof"] = state_proof
    return document


@dataclass(frozen=True)
class VerifiedReading:
    observation: dict[str, Any]
    udi: str
    sequence: int
    index: int
    certified_height: int | None
    """The block whose certificate proves the batch anchor; None without a state proof."""
    validators: tuple[str, ...]
    epoch: int | None


def _field(document: dict[str, Any], name: str, kind: type) -> Any:
    value = document.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProofRefused(f"{name!r} must be a {kind.__name__}")
    return value


def _hex(value: Any, name: str, size: int | None = None) -> bytes:
    try:
        data = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        data = None
    if data is None or (size is not None and len(data) != size):
        raise ProofRefused(f"{name!r} must be hex" + (f" of {size} bytes" if size else ""))
    return data


def _check_anchor(document: dict[str, Any], root: bytes, size: int) -> tuple[int, tuple[str, ...], int]:
    """Check the state proof of the batch anchor; returns the certifying height, validators and epoch."""
    answer = _field(document, "state_proof", dict)
    proof = decode_state_proof(_hex(answer.get("proof"), "state_proof.proof"))
    key = batch_key(document["gtin"], document["serial"], document["sequence"])
    if proof.key != key or proof.value is None:
        raise ProofRefused(f"the state proof is not of batch anchor {key!r}, present")
    try:
        anchor = codec.decode(BatchAnchor, proof.value, STATE_VALUE_SIZE_MAX)
    except codec.CodecError as error:
        raise ProofRefused(f"the proved value is not a batch anchor: {error}") from None
    if (anchor.readings_root, anchor.readings) != (root, size):
        raise ProofRefused("the anchored batch has another Merkle root or size than the proof's")
    keys = tuple(_hex(key, "state_proof.validators", PUBLIC_KEY_SIZE) for key in answer.get("validators") or [])
    epoch, first_height = answer.get("epoch"), answer.get("epoch_first_height")
    if (
        not keys
        or len(set(keys)) != len(keys)
        or not isinstance(epoch, int)
        or not isinstance(first_height, int)
        or epoch < 0
        or first_height < 1
        or (epoch == 0 and first_height != 1)
    ):
        raise ProofRefused("the state proof names no well-formed validator set (keys, epoch, epoch_first_height)")
    validators = Validators(document["chain_id"], keys, Ed25519Verifier(), None, epoch, first_height)
    verify_state_proof(proof, validators)
    return proof.header.height, tuple(key.hex() for key in keys), epoch


def verify_reading_proof(document: Any) -> VerifiedReading:
    """Check a reading proof document (untrusted JSON); raise ``ProofRefused`` naming what failed."""
    if not isinstance(document, dict) or document.get("format") != PROOF_FORMAT:
        raise ProofRefused(f"not a reading proof: its 'format' must be {PROOF_FORMAT!r}")
    _field(document, "chain_id", str)
    gtin, serial = _field(document, "gtin", str), _field(document, "serial", str)
    sequence, index, size = (_field(document, name, int) for name in ("sequence", "index", "readings"))
    observation = _field(document, "observation", dict)
    if observation.get("device") != udi_reference(gtin, serial):
        raise ProofRefused(f"the reading's Observation.device does not name device {udi_text(gtin, serial)}")
    entry = codec.encode(Reading(_hex(document.get("salt"), "salt", SALT_SIZE), canonical_json(observation)))
    path = [_hex(sibling, "path", merkle_log.HASH_SIZE) for sibling in _field(document, "path", list)]
    root = _hex(document.get("readings_root"), "readings_root", merkle_log.HASH_SIZE)
    try:
        computed = merkle_log.root_from_inclusion(entry, index, size, path)
    except ValueError as error:
        raise ProofRefused(f"inclusion proof: {error}") from None
    if computed != root:
        raise ProofRefused("inclusion proof: the reading and path do not lead to the batch's Merkle root")
    height, validators, epoch = _check_anchor(document, root, size) if "state_proof" in document else (None, (), None)
    return VerifiedReading(observation, udi_text(gtin, serial), sequence, index, height, validators, epoch)
