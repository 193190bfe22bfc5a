"""The end-to-end demo behind ``make demo``: the path that exists so far, run for real.

Two sites and a patient get keys; the patient signs a consent grant for the
hospital; the transaction is encoded, decoded as untrusted bytes, verified,
ordered into a block, applied and read back from a fresh SQLite store. A lab
result is then sealed and its key wrapped for the patient and the hospital, and
the hospital opens it because the ledger shows its consent.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from p2pmed import crypto
from p2pmed.ledger.block import make_block
from p2pmed.ledger.contracts import ALL_TX_TYPES
from p2pmed.ledger.contracts.consent import ConsentGrant, valid_consent
from p2pmed.ledger.machine import Ledger, next_nonce
from p2pmed.ledger.tx import decode_transaction, sign_transaction
from p2pmed.store import Store

CHAIN_ID = "p2pmed-demo"
DAY_MS = 24 * 3600 * 1000
BLOCK_TIME_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def run(out: Callable[[str], None] = print, home: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="p2pmed-demo-") as scratch:
        _run(out, home or Path(scratch))


def _run(out: Callable[[str], None], home: Path) -> None:
    hospital, lab, patient = crypto.SigningKey.generate(), crypto.SigningKey.generate(), crypto.SigningKey.generate()
    hospital_encryption = crypto.EncryptionPrivateKey.generate(crypto.Kem.X25519)
    patient_encryption = crypto.EncryptionPrivateKey.generate(crypto.Kem.MLKEM768_X25519)
    out("1. keys")
    for name, key in (("hospital", hospital), ("lab", lab), ("patient", patient)):
        out(f"   {name:<9} {key.public_key.hex()[:16]}…")

    ledger = Ledger(CHAIN_ID, ALL_TX_TYPES)
    store = Store.open(home / "demo.sqlite3", CHAIN_ID)
    grant = ConsentGrant(hospital.public_key, ("laboratory",), "TREAT", BLOCK_TIME_MS + 30 * DAY_MS)
    tx = sign_transaction(patient, CHAIN_ID, "consent.grant", next_nonce(store, patient.public_key), grant)
    out(f"2. patient signs consent.grant for the hospital: tx {tx.id.hex()[:16]}…, {len(tx.encoded)} bytes")

    received = decode_transaction(tx.encoded)
    ledger.check(received)
    out("3. decoded as untrusted bytes and verified: chain, type, body and signature ok")

    height, head_hash = store.head()
    block = make_block(CHAIN_ID, height + 1, head_hash, (received,), lab.public_key, BLOCK_TIME_MS)
    execution = ledger.execute_block(store, block, verified_tx_ids={received.id})
    store.append_block(block, execution)
    outcome = "applied" if execution.results[0].ok else f"refused ({execution.results[0].detail})"
    out(f"4. block {block.height} {block.hash.hex()[:16]}… appended; transaction {outcome}")
    store.close()

    store = Store.open(home / "demo.sqlite3", CHAIN_ID)
    stored = store.transaction(tx.id)
    consent = valid_consent(store, patient.public_key, hospital.public_key, "laboratory", BLOCK_TIME_MS + DAY_MS)
    assert stored is not None and consent is not None, "the grant must be in the store"
    out(f"5. read back after reopening: tx at height {stored.height}; consent for {consent.category!r},"
        f" purpose {consent.purpose}, expires in {(consent.expires_ms - BLOCK_TIME_MS) // DAY_MS} days")

    record_id = b"record-0001"
    data_key, sealed = crypto.encrypt_record(record_id, b"HbA1c 6.1 % (lab result)")
    wraps = {
        "patient": crypto.wrap_key(data_key, patient_encryption.public_key, record_id),
        "hospital": crypto.wrap_key(data_key, hospital_encryption.public_key, record_id),
    }
    out(f"6. lab seals a result ({len(sealed)} bytes) and wraps its key for the patient"
        f" (ML-KEM-768+X25519, {len(wraps['patient'])} bytes) and the hospital (X25519, {len(wraps['hospital'])} bytes)")
    opened = crypto.decrypt_record(record_id, sealed, crypto.unwrap_key(wraps["hospital"], hospital_encryption, record_id))
    out(f"7. hospital holds consent, unwraps the key and reads {len(opened)} bytes of plaintext")
    store.close()
    out("demo finished: consent signed, verified, ordered, stored, read back; record sealed and shared")
