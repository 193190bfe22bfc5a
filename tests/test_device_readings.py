"""Device readings off the network: FHIR in (a Device's UDI, a batch of Observations) and out
(a Device), the device RPC reads, and reading proofs checked offline (every altered part
refused)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from health_world import HOSPITAL, P, StoreHarness, build_world, fake_node
from ledger_harness import CHAIN, key
from p2pmed import codec
from p2pmed.client import devices as client_devices
from p2pmed.client.devices import (
    BatchMismatch,
    Reading,
    ReadingBatch,
    prove_reading,
    read_batch,
    readings_root,
    verify_reading_proof,
)
from p2pmed.consensus.state_proof import ProofRefused
from p2pmed.crypto import EncryptionPrivateKey
from p2pmed.interop.fhir import PARTY_SYSTEM, FhirError
from p2pmed.interop.fhir_devices import (
    GS1_DI_ISSUER,
    device_resource,
    import_readings,
    import_udi,
    udi_reference,
)
from p2pmed.ledger.contracts.devices import BATCH_BURST, DeviceBatch, DeviceRegister, DeviceRevoke, device
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.machine import next_nonce
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.node.admission import TxAdmission
from p2pmed.node.api.devices import device_methods
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method

GTIN, SERIAL = "09506000134352", "A/B%7"  # a serial may hold "/" and "%", percent-encoded in the URI
MONITOR = key("monitor")
REFS = {"Patient/7": P}


def observation(code: str = "8867-4", **changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": "Patient/7"},
        "valueQuantity": {"value": 72, "unit": "/min"},
    }
    return {**resource, **changes}


def bundle(*resources: dict[str, Any]) -> bytes:
    return json.dumps(
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    ).encode()


# -- FHIR ----------------------------------------------------------------------------------------------


def test_readings_come_in_from_a_bundle_each_naming_the_device() -> None:
    named = observation("8480-6", device=udi_reference(GTIN, SERIAL))
    readings = import_readings(bundle(observation(), named), GTIN, SERIAL, REFS)
    assert (readings.patient, readings.category, len(readings.observations)) == (P, "vital-signs", 2)
    for stored in readings.observations:
        assert json.loads(stored)["device"] == {
            "identifier": {"system": "urn:ietf:rfc:3986", "value": "https://id.gs1.org/01/09506000134352/21/A%2FB%257"}
        }
    single = import_readings(json.dumps(observation("99999-9")).encode(), GTIN, SERIAL, REFS, "laboratory")
    assert single.category == "laboratory" and len(single.observations) == 1


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        (
            bundle(observation(), observation(device={"reference": "Device/9"})),
            "Bundle.entry[1].resource.device",
            "names another device",
        ),
        (
            bundle(observation(), observation(subject={"identifier": {"system": PARTY_SYSTEM, "value": "ab" * 32}})),
            "Observation.subject",
            "different patients",
        ),
        (bundle(observation(), observation("2345-7")), "Observation.category", "categories laboratory, vital-signs"),
        (
            bundle({k: v for k, v in observation().items() if k != "status"}),
            "Bundle.entry[0].resource.status",
            "required",
        ),
        (bundle(observation("99999-9")), "Bundle.entry[0].resource.category", "name the data category"),
        (
            bundle(observation(subject={"reference": "Patient/8"})),
            "Bundle.entry[0].resource.subject.reference",
            "not mapped",
        ),
        (bundle({"resourceType": "Patient"}), "Bundle.entry[0].resource.resourceType", "p2pmed imports Observation"),
        (json.dumps({"resourceType": "Bundle", "entry": []}).encode(), "Bundle.entry", "1..1000 readings"),
        (
            json.dumps({"resourceType": "Bundle", "entry": [{"resource": 7}]}).encode(),
            "Bundle.entry[0].resource",
            "missing",
        ),
        (b'{"resourceType": "Bundle", "resourceType": "Bundle"}', "", "appears twice"),
    ],
)
def test_bad_readings_are_refused_naming_the_path(data: bytes, path: str, fragment: str) -> None:
    with pytest.raises(FhirError) as raised:
        import_readings(data, GTIN, SERIAL, REFS)
    assert (raised.value.path, fragment in raised.value.reason) == (path, True), str(raised.value)


def device_json(**changes: Any) -> bytes:
    resource = {
        "resourceType": "Device",
        "udiCarrier": [{"deviceIdentifier": "9506000134352", "issuer": GS1_DI_ISSUER}],
        "serialNumber": "SN-9",
        **changes,
    }
    return json.dumps(resource).encode()


def test_a_devices_udi_comes_from_its_gs1_carrier() -> None:
    assert import_udi(device_json()) == (GTIN, "SN-9")  # a GTIN-13 padded to 14 digits
    hrf = [{"deviceIdentifier": GTIN, "issuer": GS1_DI_ISSUER, "carrierHRF": f"(01){GTIN}(17)291231(21)XY"}]
    assert import_udi(device_json(udiCarrier=hrf)) == (GTIN, "XY")
    for bad, fragment in (
        (device_json(udiCarrier=[{"deviceIdentifier": GTIN, "issuer": "http://hibcc.org"}]), "issued by GS1"),
        (device_json(udiCarrier=[{"deviceIdentifier": "09506000134353", "issuer": GS1_DI_ISSUER}]), "check digit"),
        (device_json(serialNumber=""), "serial"),
    ):
        with pytest.raises(FhirError, match=fragment):
            import_udi(bad)


# -- RPC -------------------------------------------------------------------------------------------------


async def call(methods: dict[str, Method], name: str, **params: Any) -> Any:
    return await methods[name].handler(methods[name].bind(name, params))


async def test_device_reads_answer_fields_fhir_and_batches(directory: Path) -> None:
    ledger = StoreHarness(directory / "store.db")
    build_world(ledger)
    ledger.ok(HOSPITAL, "device.register", DeviceRegister(GTIN, SERIAL, MONITOR.public_key))
    record = ledger.anchor(b"\x01" * 32, P, "vital-signs")
    ledger.ok(MONITOR, "device.batch", DeviceBatch(GTIN, SERIAL, 1, 2, b"\x02" * 32, record))
    ledger.ok(HOSPITAL, "device.revoke", DeviceRevoke(GTIN, SERIAL))
    methods = device_methods(fake_node(ledger.store))

    shown = await call(methods, "device.get", gtin=GTIN, serial=SERIAL)
    assert (shown["udi"], shown["batches"], shown["active"]) == (f"(01){GTIN}(21){SERIAL}", 1, False)
    fhir = await call(methods, "device.get", gtin=GTIN, serial=SERIAL, format="fhir")
    found = device(ledger.store, GTIN, SERIAL)
    assert found is not None and fhir == device_resource(found) and fhir["status"] == "inactive"
    anchor = await call(methods, "device.batch", gtin=GTIN, serial=SERIAL, sequence=1)
    assert (anchor["record_id"], anchor["readings"]) == (record.record_id.hex(), 2)
    assert anchor["key"].startswith(f"device-batch/{GTIN}/")
    for name, params, code, fragment in (
        ("device.get", {"gtin": "123", "serial": SERIAL}, ErrorCode.INVALID_PARAMS, "must be 14 digits"),
        ("device.get", {"gtin": GTIN, "serial": SERIAL, "format": "xml"}, ErrorCode.INVALID_PARAMS, '"format"'),
        ("device.get", {"gtin": GTIN, "serial": "NONE"}, ErrorCode.NOT_FOUND, "was ever registered"),
        ("device.batch", {"gtin": GTIN, "serial": SERIAL, "sequence": 0}, ErrorCode.INVALID_PARAMS, "from 1"),
        ("device.batch", {"gtin": GTIN, "serial": SERIAL, "sequence": 2}, ErrorCode.NOT_FOUND, "has no batch 2"),
    ):
        with pytest.raises(RpcError) as raised:
            await call(methods, name, **params)
        assert raised.value.code == code and fragment in raised.value.message


def test_a_node_turns_away_a_batch_over_its_devices_rate(directory: Path) -> None:
    ledger = StoreHarness(directory / "store.db")
    build_world(ledger)
    ledger.ok(HOSPITAL, "device.register", DeviceRegister(GTIN, SERIAL, MONITOR.public_key))
    admission = TxAdmission(ledger.ledger, ledger.store)

    def next_batch(sequence: int) -> Transaction:
        record = ledger.anchor(bytes([sequence]) * 32, P, "vital-signs")
        body = DeviceBatch(GTIN, SERIAL, sequence, 1, b"\x02" * 32, record)
        return sign_transaction(MONITOR, CHAIN, "device.batch", next_nonce(ledger.store, MONITOR.public_key), body)

    for sequence in range(1, BATCH_BURST + 1):
        batch = next_batch(sequence)
        assert admission.admit(batch)
        assert ledger.commit(batch).ok
    with pytest.raises(TxRejected) as refused:
        admission.admit(next_batch(BATCH_BURST + 1))
    assert refused.value.reason is RejectReason.NOT_AUTHORISED and "is over its rate" in refused.value.detail


# -- proofs ----------------------------------------------------------------------------------------------


def a_batch() -> ReadingBatch:
    readings = import_readings(
        bundle(*(observation(valueQuantity={"value": v, "unit": "/min"}) for v in range(60, 65))), GTIN, SERIAL, REFS
    )
    return ReadingBatch(
        GTIN, SERIAL, 3, tuple(Reading(bytes([i]) * 16, o) for i, o in enumerate(readings.observations))
    )


def test_a_reading_proves_alone_and_every_altered_part_is_refused() -> None:
    batch = a_batch()
    document = prove_reading(batch, 3, "chain")
    assert document["readings_root"] == readings_root(batch.readings).hex()
    verified = verify_reading_proof(json.loads(json.dumps(document)))
    assert (verified.index, verified.sequence, verified.certified_height) == (3, 3, None)
    assert verified.observation["valueQuantity"]["value"] == 63

    def altered(change: dict[str, Any]) -> str:
        with pytest.raises(ProofRefused) as raised:
            verify_reading_proof({**json.loads(json.dumps(document)), **change})
        return str(raised.value)

    value = {**document["observation"], "valueQuantity": {"value": 99, "unit": "/min"}}
    assert "do not lead to the batch's Merkle root" in altered({"observation": value})
    assert "do not lead" in altered({"salt": "00" * 16})
    assert "do not lead" in altered({"index": 2})
    assert "do not lead" in altered({"path": ["00" * 32, *document["path"][1:]]})
    assert "do not lead" in altered({"readings_root": "00" * 32})
    assert "is not in a tree" in altered({"index": 9})
    assert "shorter" in altered({"path": document["path"][:-1]})
    other_device = {**document["observation"], "device": udi_reference(GTIN, "OTHER")}
    assert "does not name device" in altered({"observation": other_device})
    assert "'salt' must be hex of 16 bytes" in altered({"salt": "zz"})
    assert "'index' must be a int" in altered({"index": True})
    assert "not a reading proof" in altered({"format": "something-else"})
    assert "'state_proof' must be a dict" in altered({"state_proof": "yes"})
    assert "malformed proof" in altered({"state_proof": {"proof": "00"}})


def test_a_batch_record_that_is_not_what_its_anchor_says_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = a_batch()
    anchor = {"record_id": "00" * 32, "readings": 5, "readings_root": readings_root(batch.readings).hex()}

    class Node:
        def call(self, method: str, **params: Any) -> Any:
            assert method == "device.batch"
            return anchor

    def reading_returns(plaintext: bytes) -> None:
        monkeypatch.setattr(client_devices, "read_record", lambda *args: plaintext)

    def read(sequence: int = 3) -> tuple[ReadingBatch, dict[str, Any]]:
        return read_batch(Node(), MONITOR, EncryptionPrivateKey.generate(), GTIN, SERIAL, sequence)  # type: ignore[arg-type]

    reading_returns(codec.encode(batch))
    assert read()[0] == batch
    with pytest.raises(BatchMismatch, match="names another batch"):
        read(4)
    reading_returns(codec.encode(ReadingBatch(GTIN, SERIAL, 3, batch.readings[:4])))
    with pytest.raises(BatchMismatch, match="do not match the Merkle root"):
        read()
    reading_returns(b"not a batch")
    with pytest.raises(BatchMismatch, match="is not a batch of readings"):
        read()
