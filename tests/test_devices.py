"""Device rules: the registry (register, revoke, re-register), who signs a batch, batch
numbers, the per-device rate in block time, patient binding, and the batch's record."""

from __future__ import annotations

import hashlib

import pytest

from ledger_harness import LedgerHarness, key
from p2pmed.ledger.contracts import devices
from p2pmed.ledger.contracts.audit import audit_trail
from p2pmed.ledger.contracts.consent import ConsentGrant
from p2pmed.ledger.contracts.devices import (
    BATCH_BURST,
    BATCH_INTERVAL_MS,
    DeviceBatch,
    DeviceRegister,
    DeviceRevoke,
    batch_anchor,
    device,
    device_of,
)
from p2pmed.ledger.contracts.identity import OrgRevoke
from p2pmed.ledger.contracts.records import RecordRead, read_grant, record
from p2pmed.ledger.errors import RejectReason

HOSPITAL, CLINIC, MAKER = key("hospital"), key("clinic"), key("maker")
PATIENT, OTHER_PATIENT, DOCTOR = key("patient"), key("other-patient"), key("doctor")
MONITOR, GATEWAY, STRANGER = key("monitor"), key("gateway"), key("stranger")
GTIN, SERIAL = "09506000134352", "MON-1"
P = PATIENT.public_key


@pytest.fixture
def ledger() -> LedgerHarness:
    harness = LedgerHarness()
    harness.admit_organisation(HOSPITAL, "hospital")
    harness.admit_organisation(CLINIC, "clinic")
    harness.admit_organisation(MAKER, "manufacturer")
    harness.register_person(HOSPITAL, PATIENT, "patient")
    harness.register_person(CLINIC, OTHER_PATIENT, "patient")
    harness.register_person(HOSPITAL, DOCTOR, "clinician")
    harness.ok(HOSPITAL, "device.register", DeviceRegister(GTIN, SERIAL, MONITOR.public_key))
    return harness


def batch(ledger: LedgerHarness, sequence: int, patient: bytes = P, serial: str = SERIAL) -> DeviceBatch:
    record_id = hashlib.sha256(f"batch-{serial}-{sequence}-{ledger.height}".encode()).digest()
    root = hashlib.sha256(record_id).digest()
    return DeviceBatch(GTIN, serial, sequence, 3, root, ledger.anchor(record_id, patient, "vital-signs"))


def test_a_batch_anchors_its_readings_as_the_patients_record_written_by_the_operator(ledger: LedgerHarness) -> None:
    sent = batch(ledger, 1)
    ledger.ok(MONITOR, "device.batch", sent)
    anchor = batch_anchor(ledger.state, GTIN, SERIAL, 1)
    assert anchor is not None
    assert (anchor.readings, anchor.readings_root, anchor.record_id, anchor.submitter) == (
        3,
        sent.readings_root,
        sent.record.record_id,
        MONITOR.public_key,
    )
    anchored = record(ledger.state, sent.record.record_id)
    assert anchored is not None and (anchored.patient, anchored.category, anchored.writer) == (
        P,
        "vital-signs",
        HOSPITAL.public_key,
    )
    (entry,) = audit_trail(ledger.state, "patient", P, kinds=frozenset({"record-write"}))
    assert entry.actor == HOSPITAL.public_key and entry.detail == f"device (01){GTIN}(21){SERIAL} batch 1, 3 readings"
    registered = device(ledger.state, GTIN, SERIAL)
    assert registered is not None and registered.batches == 1

    ledger.refused(
        DOCTOR, "record.read", RecordRead(sent.record.record_id, "TREAT", False), RejectReason.NOT_AUTHORISED
    )
    grant = ConsentGrant(P, DOCTOR.public_key, ("vital-signs",), ("TREAT",), ledger.time_ms + 86_400_000)
    ledger.ok(PATIENT, "consent.grant", grant)
    ledger.ok(DOCTOR, "record.read", RecordRead(sent.record.record_id, "TREAT", False))
    assert read_grant(ledger.state, sent.record.record_id, DOCTOR.public_key, ledger.time_ms) is not None
    assert ledger.refused(
        MONITOR, "record.read", RecordRead(sent.record.record_id, "TREAT", False), RejectReason.NOT_AUTHORISED
    ).startswith("the reader is neither a person nor an organisation")


@pytest.mark.parametrize(
    ("signer", "body", "reason", "fragment"),
    [
        (
            PATIENT,
            DeviceRegister(GTIN, "X", key("k1").public_key),
            RejectReason.NOT_AUTHORISED,
            "organisation in force",
        ),
        (MAKER, DeviceRegister(GTIN, "X", key("k1").public_key), RejectReason.NOT_AUTHORISED, "operates no device"),
        (HOSPITAL, DeviceRegister("09506000134353", "X", key("k1").public_key), RejectReason.INVALID, "check digit"),
        (HOSPITAL, DeviceRegister(GTIN, "", key("k1").public_key), RejectReason.INVALID, "serial ''"),
        (HOSPITAL, DeviceRegister(GTIN, "X", key("k1").public_key, "toaster"), RejectReason.INVALID, "the role"),
        (HOSPITAL, DeviceRegister(GTIN, "X", PATIENT.public_key), RejectReason.INVALID, "keys are never reused"),
        (HOSPITAL, DeviceRegister(GTIN, "X", MONITOR.public_key), RejectReason.INVALID, "keys are never reused"),
        (HOSPITAL, DeviceRegister(GTIN, "X", b"short"), RejectReason.INVALID, "32-byte Ed25519"),
        (
            HOSPITAL,
            DeviceRegister(GTIN, "X", key("k1").public_key, patient=DOCTOR.public_key),
            RejectReason.INVALID,
            "no patient",
        ),
        (CLINIC, DeviceRegister(GTIN, SERIAL, key("k1").public_key), RejectReason.DUPLICATE, "revokes it first"),
        (CLINIC, DeviceRevoke(GTIN, SERIAL), RejectReason.NOT_AUTHORISED, "only the organisation that operates"),
        (HOSPITAL, DeviceRevoke(GTIN, "NOPE"), RejectReason.INVALID, "no device in force"),
    ],
)
def test_a_bad_registration_or_revocation_is_refused(
    ledger: LedgerHarness, signer: object, body: object, reason: RejectReason, fragment: str
) -> None:
    tx_type = "device.register" if isinstance(body, DeviceRegister) else "device.revoke"
    assert fragment in ledger.refused(signer, tx_type, body, reason)  # type: ignore[arg-type]


def test_only_the_device_or_a_gateway_of_its_organisation_signs_its_batches(ledger: LedgerHarness) -> None:
    detail = ledger.refused(STRANGER, "device.batch", batch(ledger, 1), RejectReason.NOT_AUTHORISED)
    assert "signed by its device or by a gateway" in detail
    ledger.ok(CLINIC, "device.register", DeviceRegister(GTIN, "CLINIC-GW", key("clinic-gw").public_key, "gateway"))
    ledger.refused(key("clinic-gw"), "device.batch", batch(ledger, 1), RejectReason.NOT_AUTHORISED)
    ledger.ok(HOSPITAL, "device.register", DeviceRegister(GTIN, "GW-1", GATEWAY.public_key, "gateway"))
    ledger.ok(GATEWAY, "device.batch", batch(ledger, 1))
    ledger.ok(MONITOR, "device.batch", batch(ledger, 2))
    anchor = batch_anchor(ledger.state, GTIN, SERIAL, 1)
    assert anchor is not None and anchor.submitter == GATEWAY.public_key
    ledger.ok(HOSPITAL, "device.register", DeviceRegister(GTIN, "PLAIN", key("plain").public_key))
    ledger.refused(key("plain"), "device.batch", batch(ledger, 3), RejectReason.NOT_AUTHORISED)


def test_a_batch_is_anchored_once_in_order(ledger: LedgerHarness) -> None:
    ledger.ok(MONITOR, "device.batch", batch(ledger, 1))
    for sequence in (1, 3):
        detail = ledger.refused(MONITOR, "device.batch", batch(ledger, sequence), RejectReason.INVALID)
        assert f"the next is number 2, not {sequence}" in detail
    assert batch_anchor(ledger.state, GTIN, SERIAL, 3) is None


def test_a_device_over_its_rate_is_refused_until_block_time_catches_up(ledger: LedgerHarness) -> None:
    for sequence in range(1, BATCH_BURST + 1):  # a block a second: a burst
        ledger.ok(MONITOR, "device.batch", batch(ledger, sequence))
    detail = ledger.refused(MONITOR, "device.batch", batch(ledger, BATCH_BURST + 1), RejectReason.NOT_AUTHORISED)
    assert "over its rate" in detail and "next batch is due in" in detail
    assert batch_anchor(ledger.state, GTIN, SERIAL, BATCH_BURST + 1) is None
    ledger.refused(GATEWAY, "device.batch", batch(ledger, BATCH_BURST + 1), RejectReason.NOT_AUTHORISED)
    ledger.time_ms += BATCH_INTERVAL_MS
    ledger.ok(MONITOR, "device.batch", batch(ledger, BATCH_BURST + 1))
    ledger.refused(MONITOR, "device.batch", batch(ledger, BATCH_BURST + 2), RejectReason.NOT_AUTHORISED)
    ledger.ok(HOSPITAL, "device.register", DeviceRegister(GTIN, "OTHER", key("other").public_key))
    ledger.ok(key("other"), "device.batch", batch(ledger, 1, serial="OTHER"))  # the rate is per device


def test_a_revoked_device_sends_nothing_and_its_udi_may_come_back_with_a_new_key(ledger: LedgerHarness) -> None:
    ledger.ok(MONITOR, "device.batch", batch(ledger, 1))
    ledger.ok(HOSPITAL, "device.revoke", DeviceRevoke(GTIN, SERIAL))
    assert device_of(ledger.state, MONITOR.public_key) is None
    detail = ledger.refused(MONITOR, "device.batch", batch(ledger, 2), RejectReason.NOT_AUTHORISED)
    assert detail == f"no device in force is (01){GTIN}(21){SERIAL}"
    ledger.refused(HOSPITAL, "device.revoke", DeviceRevoke(GTIN, SERIAL), RejectReason.INVALID)
    ledger.refused(HOSPITAL, "device.register", DeviceRegister(GTIN, SERIAL, MONITOR.public_key), RejectReason.INVALID)
    replacement = key("monitor-2")
    ledger.ok(HOSPITAL, "device.register", DeviceRegister(GTIN, SERIAL, replacement.public_key))
    ledger.refused(MONITOR, "device.batch", batch(ledger, 2), RejectReason.NOT_AUTHORISED)
    ledger.ok(replacement, "device.batch", batch(ledger, 2))


def test_a_device_bound_to_a_patient_sends_only_their_readings(ledger: LedgerHarness) -> None:
    cuff = key("cuff")
    ledger.ok(HOSPITAL, "device.register", DeviceRegister(GTIN, "CUFF", cuff.public_key, patient=P))
    grant = ConsentGrant(
        OTHER_PATIENT.public_key, HOSPITAL.public_key, ("vital-signs",), ("TREAT",), ledger.time_ms + 86_400_000
    )
    ledger.ok(OTHER_PATIENT, "consent.grant", grant)  # the hospital may write the other patient's vital signs
    other = batch(ledger, 1, patient=OTHER_PATIENT.public_key, serial="CUFF")
    assert "bound to patient" in ledger.refused(cuff, "device.batch", other, RejectReason.NOT_AUTHORISED)
    ledger.ok(cuff, "device.batch", batch(ledger, 1, serial="CUFF"))


def test_the_operator_needs_a_care_relationship_with_the_patient(ledger: LedgerHarness) -> None:
    stranger_patient = batch(ledger, 1, patient=OTHER_PATIENT.public_key)  # registered at the clinic
    assert "no care relationship" in ledger.refused(
        MONITOR, "device.batch", stranger_patient, RejectReason.NOT_AUTHORISED
    )
    registered = device(ledger.state, GTIN, SERIAL)
    assert registered is not None and registered.batches == 0


def test_a_device_of_a_revoked_organisation_is_not_in_force(ledger: LedgerHarness) -> None:
    for validator in ledger.validators[:3]:
        ledger.ok(validator, "identity.org.revoke", OrgRevoke(HOSPITAL.public_key))
    assert device_of(ledger.state, MONITOR.public_key) is None
    assert "is not in force" in ledger.refused(MONITOR, "device.batch", batch(ledger, 1), RejectReason.NOT_AUTHORISED)


def test_a_malformed_batch_is_refused(ledger: LedgerHarness) -> None:
    good = batch(ledger, 1)
    for bad in (
        DeviceBatch(GTIN, SERIAL, 1, 0, good.readings_root, good.record),
        DeviceBatch(GTIN, SERIAL, 1, devices.READINGS_PER_BATCH_MAX + 1, good.readings_root, good.record),
        DeviceBatch(GTIN, SERIAL, 1, 3, b"short", good.record),
    ):
        assert "a batch holds 1..1000 readings" in ledger.refused(MONITOR, "device.batch", bad, RejectReason.INVALID)


def test_an_organisations_devices_together_are_held_to_its_rate(
    ledger: LedgerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devices, "ORGANISATION_BATCH_BURST", 2)
    monkeypatch.setattr(devices, "ORGANISATION_BATCH_INTERVAL_MS", 10_000)
    monitors = [key(f"monitor-{index}") for index in range(3)]
    for index, monitor in enumerate(monitors):
        ledger.ok(HOSPITAL, "device.register", DeviceRegister(GTIN, f"M{index}", monitor.public_key))
    ledger.ok(monitors[0], "device.batch", batch(ledger, 1, serial="M0"))
    ledger.ok(monitors[1], "device.batch", batch(ledger, 1, serial="M1"))
    detail = ledger.refused(monitors[2], "device.batch", batch(ledger, 1, serial="M2"), RejectReason.NOT_AUTHORISED)
    assert f"organisation {HOSPITAL.public_key.hex()[:16]} (its devices together) is over its rate" in detail
    assert devices.rate_problem(ledger.state, GTIN, "M2", ledger.time_ms) == detail
    ledger.time_ms += 10_000
    ledger.ok(monitors[2], "device.batch", batch(ledger, 1, serial="M2"))
    assert devices.rate_problem(ledger.state, GTIN, "M2", ledger.time_ms + 60_000) is None
