"""The end-to-end demo behind ``make demo``: four real ``p2pmed node`` processes on 127.0.0.1.

Four sites (a hospital, a lab, a pharmacy and a trial sponsor) each run a node:
its own Ed25519 key, SQLite store and libp2p host (TCP, Noise, Yamux), PBFT over
direct streams, transactions over gossipsub. A patient grants the hospital
consent through the lab's node; every node commits it. The primary's process is
then killed with SIGKILL mid-stream; the other three change view and keep
committing the patient's next transactions and a burst of load. The killed node
restarts from its store, catches up, and all four show the same head. Finally a
lab result is sealed and its key wrapped for the patient and the hospital, which
opens it because the ledger (asked over RPC) shows its consent.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pmed import crypto
from p2pmed.config import NodeConfig
from p2pmed.crypto import load_signing_key
from p2pmed.home import NODE_KEY
from p2pmed.ledger.contracts.consent import ConsentGrant, ConsentRevoke
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.load import run_load
from p2pmed.process_network import ProcessNetwork

CHAIN_ID = "p2pmed-demo"
SITES = ("hospital", "lab", "pharmacy", "sponsor")
DAY_MS = 24 * 3600 * 1000
CONSENT_DAYS = 30
WAIT_S = 60.0
CONFIG = NodeConfig(log_format="json", request_timeout_ms=1_500, view_change_timeout_ms=1_500)


def run(out: Callable[[str], None] = print, directory: Path | None = None) -> ProcessNetwork:
    """Run the demo; returns the (stopped) network so tests can inspect its homes."""
    if directory is not None:
        return _run(out, directory)
    with tempfile.TemporaryDirectory(prefix="p2pmed-demo-") as scratch:
        return _run(out, Path(scratch))


def _run(out: Callable[[str], None], directory: Path) -> ProcessNetwork:
    with ProcessNetwork(directory, len(SITES), CONFIG, CHAIN_ID) as net:
        _story(net, out)
        return net


def _heights(net: ProcessNetwork) -> str:
    parts = []
    for index, site in enumerate(SITES):
        if net.processes[index] is None:
            parts.append(f"{site} down")
            continue
        status = net.call(index, "node.status")
        parts.append(f"{site} {status['height']} (view {status['view']})")
    return ", ".join(parts)


def _commit(net: ProcessNetwork, via: int, tx: Transaction, watchers: list[int]) -> dict[str, Any]:
    net.call(via, "tx.submit", tx=tx.encoded.hex())
    for index in watchers:
        result = net.wait_for(
            index, lambda: _committed(net.call(index, "tx.get", tx_id=tx.id.hex())), WAIT_S, "to commit the transaction"
        )
    return result


def _committed(result: dict[str, Any]) -> dict[str, Any] | None:
    return result if result["status"] in ("committed", "rejected") else None


def _story(net: ProcessNetwork, out: Callable[[str], None]) -> None:
    out(f"1. four sites start their nodes as separate processes on 127.0.0.1 (logs in {net.directory}):"
        f" {', '.join(SITES)}")
    net.start_all(WAIT_S)
    keys = [load_signing_key(home / NODE_KEY) for home in net.homes]
    hospital, lab = keys[0], keys[1]
    patient = crypto.SigningKey.generate()
    out(f"   PBFT with n = 4 tolerates f = 1 faulty site; heights: {_heights(net)}")

    expiry_ms = int(time.time() * 1000) + CONSENT_DAYS * DAY_MS
    nonce = 0
    grant = sign_transaction(patient, CHAIN_ID, "consent.grant", nonce, ConsentGrant(hospital.public_key, ("laboratory",), "TREAT", expiry_ms))
    committed = _commit(net, 1, grant, [0, 1, 2, 3])
    out(f"2. the patient grants the hospital consent to lab results, sent through the lab's node"
        f" (tx {grant.id.hex()[:16]}…, block {committed['height']}); heights: {_heights(net)}")

    primary = net.call(1, "node.status")["primary"]
    out(f"3. kill -9 the primary ({SITES[primary]}): its process dies at once, its store stays on disk")
    net.kill(primary)
    survivors = [index for index in range(len(SITES)) if index != primary]
    for category in ("imaging", "medication", "vital-signs"):
        nonce += 1
        tx = sign_transaction(patient, CHAIN_ID, "consent.grant", nonce, ConsentGrant(lab.public_key, (category,), "TREAT", expiry_ms))
        _commit(net, survivors[nonce % 3], tx, survivors)
    nonce += 1
    revoke = sign_transaction(patient, CHAIN_ID, "consent.revoke", nonce, ConsentRevoke(lab.public_key, ("imaging",)))
    _commit(net, survivors[0], revoke, survivors)
    out(f"4. the other three change view and commit the patient's next {nonce} transactions; heights: {_heights(net)}")
    report = run_load(net.homes[survivors[1]] / CONFIG.rpc_socket, 200, rate=50, wait=True, timeout_s=WAIT_S)
    out(f"   and a burst of 200 sample transactions at 50 tx/s: {'; '.join(report.lines())}")

    net.start(primary)
    net.wait_ready(primary, WAIT_S)
    head = net.wait_for(None, lambda: _same_head(net), WAIT_S, "to reach the same head")
    out(f"5. the {SITES[primary]} node restarts from its store and catches up; heights: {_heights(net)};"
        f" identical head hash on all four: yes ({head[:16]}…)")

    hospital_lab = net.call(primary, "consent.get", patient=patient.public_key.hex(), grantee=hospital.public_key.hex(), category="laboratory")
    lab_imaging = net.call(primary, "consent.get", patient=patient.public_key.hex(), grantee=lab.public_key.hex(), category="imaging")
    assert hospital_lab is not None and lab_imaging is None, "the restarted node must see the same consents"
    out(f"6. asked over RPC, the restarted node says: the hospital may read lab results (until"
        f" {time.strftime('%Y-%m-%d', time.gmtime(hospital_lab['expires_ms'] / 1000))}); the lab's imaging consent was revoked")

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
    codes = [net.stop(index) for index in range(len(SITES))]
    out(f"demo finished: four processes agreed, a killed primary was survived and caught up; nodes stopped (exit codes {codes})")


def _same_head(net: ProcessNetwork) -> str | None:
    heads = {net.call(index, "node.status")["last_block_hash"] for index in range(len(SITES))}
    return heads.pop() if len(heads) == 1 else None
