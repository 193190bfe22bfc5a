"""The demo's medical-device scene: a hospital's pulse oximeter sends readings, a clinician
reads and proves one, the device floods and is held to its rate, then it is revoked.

Everything goes through one node's RPC socket, signed on the client: the hospital
registers a home-monitoring patient, a clinician and the oximeter (GS1 UDI, its own
key); the patient consents the clinician to vital signs; the oximeter sends a batch of
FHIR Observations without a category (filed as vital signs by their LOINC codes); the
clinician reads them back and proves one reading to the anchored Merkle root and a
certified block, checked offline; the oximeter's burst runs out; the hospital revokes it
and its next batch is refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from p2pmed.client.devices import anchor_state_proof, prove_reading, read_batch, send_batch, verify_reading_proof
from p2pmed.client.records import submit
from p2pmed.crypto import EncryptionPrivateKey, SigningKey
from p2pmed.interop.fhir import PARTY_SYSTEM
from p2pmed.interop.fhir_devices import import_readings
from p2pmed.ledger.contracts.consent import ConsentGrant
from p2pmed.ledger.contracts.devices import BATCH_BURST, DeviceRegister, DeviceRevoke, udi_text
from p2pmed.ledger.contracts.identity import PersonRegister
from p2pmed.rpc.client import RpcClient, RpcError

__all__ = ["device_scene"]

GTIN, SERIAL = "09506000134352", "OXI-0042"
DAY_MS = 24 * 3600 * 1000
LOINC = "http://loinc.org"
READINGS = (("8867-4", 72, "/min"), ("59408-5", 97, "%"), ("8867-4", 75, "/min"))


def _observations(patient: bytes) -> bytes:
    entries = [
        {
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": LOINC, "code": code}]},
                "subject": {"identifier": {"system": PARTY_SYSTEM, "value": patient.hex()}},
                "valueQuantity": {"value": value, "unit": unit},
            }
        }
        for code, value, unit in READINGS
    ]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


def _value(observation: dict[str, Any]) -> str:
    quantity = observation["valueQuantity"]
    return f"{observation['code']['coding'][0]['code']} = {quantity['value']} {quantity['unit']}"


def device_scene(node: RpcClient, hospital: SigningKey, out: Callable[[str], None]) -> None:
    started_s = time.monotonic()
    patient, clinician, oximeter = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    patient_encryption, clinician_encryption = EncryptionPrivateKey.generate(), EncryptionPrivateKey.generate()
    for person, encryption, role in (
        (patient, patient_encryption, "patient"),
        (clinician, clinician_encryption, "clinician"),
    ):
        submit(
            node, hospital, "identity.person.register", PersonRegister(person.public_key, role, encryption.public_key)
        )
    submit(node, hospital, "device.register", DeviceRegister(GTIN, SERIAL, oximeter.public_key))
    expiry = int(time.time() * 1000) + 30 * DAY_MS
    grant = ConsentGrant(patient.public_key, clinician.public_key, ("vital-signs",), ("TREAT",), expiry)
    submit(node, patient, "consent.grant", grant)
    udi = udi_text(GTIN, SERIAL)
    out(f"devices: the hospital registers pulse oximeter {udi} with the oximeter's own key; a patient consents")

    readings = import_readings(_observations(patient.public_key), GTIN, SERIAL)
    sent = send_batch(node, oximeter, GTIN, SERIAL, readings)
    out(
        f"   a. the oximeter signs batch {sent.sequence}: {len(readings.observations)} FHIR Observations without a"
        f" category, filed as {readings.category} by their LOINC codes, encrypted as the patient's record; the ledger"
        f" holds only their salted Merkle root {sent.readings_root.hex()[:16]}…"
    )
    batch, anchor = read_batch(node, clinician, clinician_encryption, GTIN, SERIAL, sent.sequence)
    shown = "; ".join(_value(json.loads(reading.observation)) for reading in batch.readings)
    out(f"   b. the consented clinician reads them back as FHIR Observations naming the device: {shown}")
    proof = prove_reading(batch, 1, node.call("node.status")["chain_id"], anchor_state_proof(node, anchor))
    verified = verify_reading_proof(json.loads(json.dumps(proof)))
    out(
        f"   c. and proves one reading alone ({_value(verified.observation)}): {len(proof['path'])} sibling hashes to"
        f" the root, whose anchor a quorum certified in block {verified.certified_height}; checked offline"
    )
    for _ in range(BATCH_BURST):
        try:
            send_batch(node, oximeter, GTIN, SERIAL, readings)
        except RpcError as refused:  # the node turns it away before it takes a place in a block
            out(f"   d. the oximeter floods: after its burst, the node refuses: {refused.message}")
            break
    else:
        raise AssertionError("a device over its burst must be refused")
    submit(node, hospital, "device.revoke", DeviceRevoke(GTIN, SERIAL))
    try:
        send_batch(node, oximeter, GTIN, SERIAL, readings)
        raise AssertionError("a revoked device's batch must be refused")
    except RpcError as error:
        out(f"   e. the hospital revokes it; its next batch is refused at the door: {error.message.split(': ', 1)[-1]}")
    out(f"   (device scene: {time.monotonic() - started_s:.1f} s)")
