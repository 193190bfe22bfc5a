"""``audit.proof``: one audit entry of a patient's trail proved to a certified block, checked
offline with the validator set alone, on real NodeCores (Ed25519, SQLite, the ledger)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from p2pmed import codec
from p2pmed.consensus.state_proof import ProofRefused, decode_state_proof, verify_state_proof
from p2pmed.crypto import EncryptionPrivateKey, SigningKey
from p2pmed.ledger.contracts.audit import AuditEntry
from p2pmed.ledger.contracts.consent import ConsentGrant
from p2pmed.ledger.contracts.identity import PersonRegister
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.node.api.proofs import proof_methods
from p2pmed.rpc.errors import RpcError
from p2pmed.testing.local_network import LocalNetwork

CHAIN = "audit-proof-test"
PATIENT = SigningKey.from_seed(b"p" * 32)
FAR_MS = 4_102_444_800_000


def committed(network: LocalNetwork, tx: Transaction) -> int:
    network.submit_everywhere(tx)
    for _ in range(200):
        network.run(20)
        stored = network.cores[0].store.transaction(tx.id)  # type: ignore[union-attr]
        if stored is not None:
            assert stored.reject_reason is None, stored
            return stored.height
    raise AssertionError("not committed")


def call(network: LocalNetwork, method: str, **params: Any) -> dict[str, Any]:
    """The RPC method as the server runs it: JSON params (bytes as hex) bound, then handled."""
    handler = proof_methods(SimpleNamespace(store=network.cores[0].store))[method]  # type: ignore[arg-type]
    wire = {name: value.hex() if isinstance(value, bytes) else value for name, value in params.items()}
    return asyncio.run(handler.handler(handler.bind(method, wire)))


def test_a_patients_audit_entry_is_proved_and_a_forged_one_refused(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN)
    hospital = network.keys[0]
    encryption = EncryptionPrivateKey.generate().public_key
    register = PersonRegister(PATIENT.public_key, "patient", encryption)
    committed(network, sign_transaction(hospital, CHAIN, "identity.person.register", 0, register))
    consent = ConsentGrant(PATIENT.public_key, hospital.public_key, ("laboratory",), ("TREAT",), FAR_MS)
    grant = sign_transaction(PATIENT, CHAIN, "consent.grant", 0, consent)
    height = committed(network, grant)
    committed(network, sign_transaction(SigningKey.from_seed(b"x" * 32), CHAIN, "load.probe", 0, Probe("next")))
    params = {"by": "patient", "subject": PATIENT.public_key, "height": height, "tx_id": grant.id}
    answer = call(network, "audit.proof", **params)
    proof = decode_state_proof(bytes.fromhex(answer["proof"]))
    commitment = verify_state_proof(proof, network.validators)
    assert commitment.height >= height and answer["epoch"] == 0
    entry = codec.decode(AuditEntry, bytes.fromhex(answer["value"]), 1 << 20)
    assert (entry.kind, entry.patient, entry.tx_id) == ("consent-grant", PATIENT.public_key, grant.id)
    other = call(network, "audit.proof", **{**params, "tx_id": bytes(32)})
    assert other["value"] is None  # no such entry: proved absent
    verify_state_proof(decode_state_proof(bytes.fromhex(other["proof"])), network.validators)
    forged = dataclasses.replace(proof, value=codec.encode(dataclasses.replace(entry, kind="break-glass")))
    with pytest.raises(ProofRefused):
        verify_state_proof(forged, network.validators)
    with pytest.raises(RpcError, match=r"audit\.proof"):
        call(network, "audit.proof", **{**params, "by": "neighbour"})
    network.close()
