"""The end-to-end demo behind ``make demo``: what p2pmed does today, run for real.

Four validators (a hospital, a lab, a pharmacy and a trial sponsor) run PBFT over
an in-process network, each with its own SQLite store and Ed25519 key. A patient
grants the hospital consent; every node commits it. The primary is then killed
(its in-memory state is gone, only its store survives), the other three change
view and keep committing the patient's next transactions, and the killed node
restarts from its store and catches up to the same head. Finally a lab result is
sealed and its key wrapped for the patient and the hospital, which opens it
because the ledger shows its consent. (The libp2p daemon replaces the in-process
network in a later issue; the consensus, ledger and store code is the same.)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from p2pmed import crypto
from p2pmed.consensus.replica import ReplicaConfig
from p2pmed.ledger.contracts.consent import ConsentGrant, ConsentRevoke, valid_consent
from p2pmed.ledger.tx import sign_transaction
from p2pmed.local_network import LocalNetwork

CHAIN_ID = "p2pmed-demo"
SITES = ("hospital", "lab", "pharmacy", "sponsor")
DAY_MS = 24 * 3600 * 1000
CONSENT_DAYS = 30


def run(out: Callable[[str], None] = print, home: Path | None = None) -> LocalNetwork:
    """Run the demo; returns the (closed) network so tests can inspect its stores' paths."""
    with tempfile.TemporaryDirectory(prefix="p2pmed-demo-") as scratch:
        return _run(out, home or Path(scratch))


def _heights(network: LocalNetwork) -> str:
    parts = []
    for site, head in zip(SITES, network.heads(), strict=True):
        parts.append(f"{site} {'down' if head is None else head[0]}")
    return ", ".join(parts)


def _run(out: Callable[[str], None], home: Path) -> LocalNetwork:
    network = LocalNetwork(home, CHAIN_ID, config=ReplicaConfig(checkpoint_interval=4, watermark_window=16))
    patient = crypto.SigningKey.generate()
    hospital, lab = network.keys[0], network.keys[1]
    out(f"1. four sites start a PBFT network (n = 4, tolerates f = 1): {', '.join(SITES)}")
    out(f"   patient key {patient.public_key.hex()[:16]}…, hospital key {hospital.public_key.hex()[:16]}…")

    nonce = 0
    expiry_ms = network.now_ms + CONSENT_DAYS * DAY_MS
    grant = sign_transaction(patient, CHAIN_ID, "consent.grant", nonce, ConsentGrant(hospital.public_key, ("laboratory",), "TREAT", expiry_ms))
    network.submit_everywhere(grant)
    network.run(1_000)
    out(f"2. patient grants the hospital consent to lab results (tx {grant.id.hex()[:16]}…); heights: {_heights(network)}")

    out("3. kill the primary (hospital node): its memory is gone, its store stays on disk")
    network.crash(0)
    for category in ("imaging", "medication", "vital-signs"):
        nonce += 1
        body = ConsentGrant(lab.public_key, (category,), "TREAT", expiry_ms)
        network.submit_everywhere(sign_transaction(patient, CHAIN_ID, "consent.grant", nonce, body))
        network.run(600)
    nonce += 1
    revoke = sign_transaction(patient, CHAIN_ID, "consent.revoke", nonce, ConsentRevoke(lab.public_key, ("imaging",)))
    network.submit_everywhere(revoke)
    network.run(6_000)
    survivor = network.cores[1]
    assert survivor is not None
    out(f"4. the other three change view (now view {survivor.replica.view}) and commit the patient's next"
        f" {nonce} transactions; heights: {_heights(network)}")

    network.restart(0)
    network.run(3_000)
    heads = network.heads()
    same = len({head for head in heads if head is not None}) == 1
    out(f"5. the hospital node restarts from its store and catches up; heights: {_heights(network)};"
        f" identical head hash on all four: {'yes' if same else 'NO'}")
    assert same, "every node must reach the same head"

    restarted = network.cores[0]
    assert restarted is not None
    now_ms = network.now_ms
    lab_imaging = valid_consent(restarted.store, patient.public_key, lab.public_key, "imaging", now_ms)
    hospital_lab = valid_consent(restarted.store, patient.public_key, hospital.public_key, "laboratory", now_ms)
    assert hospital_lab is not None and lab_imaging is None
    out("6. read back from the restarted node's store: hospital may read lab results;"
        " the lab's imaging consent was revoked")

    patient_encryption = crypto.EncryptionPrivateKey.generate(crypto.Kem.MLKEM768_X25519)
    hospital_encryption = crypto.EncryptionPrivateKey.generate(crypto.Kem.X25519)
    record_id = b"record-0001"
    data_key, sealed = crypto.encrypt_record(record_id, b"HbA1c 6.1 % (lab result)")
    wrap_for_patient = crypto.wrap_key(data_key, patient_encryption.public_key, record_id)
    wrap_for_hospital = crypto.wrap_key(data_key, hospital_encryption.public_key, record_id)
    out(f"7. the lab seals a result ({len(sealed)} bytes, AES-256-GCM) and wraps its key for the patient"
        f" (ML-KEM-768+X25519, {len(wrap_for_patient)} bytes) and the hospital (X25519, {len(wrap_for_hospital)} bytes)")
    opened = crypto.decrypt_record(record_id, sealed, crypto.unwrap_key(wrap_for_hospital, hospital_encryption, record_id))
    out(f"8. the hospital holds consent, unwraps the key and reads {len(opened)} bytes of plaintext")
    network.close()
    out("demo finished: consent ordered by PBFT, a killed primary survived, its node caught up, a record shared")
    return network
