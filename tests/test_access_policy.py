"""The access table (``p2pmed.ledger.contracts.policy``) holds against what a careful auditor tried:
each case here was accepted before the table existed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ledger_harness import LedgerHarness, key
from p2pmed.crypto import EncryptionPrivateKey, SigningKey
from p2pmed.ledger.contracts.consent import ConsentGrant
from p2pmed.ledger.contracts.identity import OrgRevoke, PersonRegister, person_of
from p2pmed.ledger.contracts.policy import (
    BREAK_GLASS_PER_WINDOW,
    BREAK_GLASS_WINDOW_MS,
    PURPOSES,
    PURPOSES_OF,
    REGISTRARS,
    table_markdown,
)
from p2pmed.ledger.contracts.records import RecordAdd, RecordRead
from p2pmed.ledger.errors import RejectReason
from p2pmed.quorum import quorum_size

HOSPITAL, OTHER_HOSPITAL, PHARMACY, DISTRIBUTOR = key("hospital"), key("hospital-2"), key("pharmacy"), key("dist")
PATIENT, DOCTOR = key("patient"), key("doctor")
YEAR_MS = 365 * 86_400_000


@pytest.fixture
def ledger() -> LedgerHarness:
    harness = LedgerHarness()
    harness.admit_organisation(HOSPITAL, "hospital")
    harness.admit_organisation(OTHER_HOSPITAL, "hospital")
    harness.admit_organisation(PHARMACY, "pharmacy")
    harness.admit_organisation(DISTRIBUTOR, "distributor")
    harness.register_person(HOSPITAL, PATIENT, "patient")
    harness.register_person(HOSPITAL, DOCTOR, "clinician")
    return harness


def _register(person: SigningKey, role: str) -> PersonRegister:
    return PersonRegister(person.public_key, role, EncryptionPrivateKey.generate().public_key)


def anchor(ledger: LedgerHarness, category: str = "laboratory", label: bytes = b"r") -> RecordAdd:
    custodians = tuple(validator.public_key for validator in ledger.validators[:2])
    digest = hashlib.sha256(b"ciphertext").digest()
    return RecordAdd(hashlib.sha256(label).digest(), PATIENT.public_key, category, digest, 10, custodians)


def test_a_distributor_registers_no_clinician_and_each_role_only_where_the_table_says(ledger: LedgerHarness) -> None:
    detail = ledger.refused(
        DISTRIBUTOR, "identity.person.register", _register(key("fake-doctor"), "clinician"), RejectReason.NOT_AUTHORISED
    )
    assert "a distributor may not register a clinician" in detail and "hospital" in detail
    assert "a pharmacy may not register a researcher" in ledger.refused(
        PHARMACY, "identity.person.register", _register(key("r"), "researcher"), RejectReason.NOT_AUTHORISED
    )
    ledger.ok(PHARMACY, "identity.person.register", _register(key("pharmacist"), "pharmacist"))
    assert all("distributor" not in kinds and "manufacturer" not in kinds for kinds in REGISTRARS.values())


def test_a_writer_needs_its_categories_and_a_care_relationship(ledger: LedgerHarness) -> None:
    assert "no care relationship" in ledger.refused(
        OTHER_HOSPITAL, "record.add", anchor(ledger), RejectReason.NOT_AUTHORISED
    ), "a hospital where the patient is not registered and has no consent"
    assert "a pharmacy may not write imaging records" in ledger.refused(
        PHARMACY, "record.add", anchor(ledger, "imaging"), RejectReason.NOT_AUTHORISED
    )
    assert "a distributor may not write" in ledger.refused(
        DISTRIBUTOR, "record.add", anchor(ledger, "medication"), RejectReason.NOT_AUTHORISED
    )
    grant = ConsentGrant(
        PATIENT.public_key, OTHER_HOSPITAL.public_key, ("laboratory",), "TREAT", ledger.time_ms + YEAR_MS
    )
    ledger.ok(PATIENT, "consent.grant", grant)
    ledger.ok(OTHER_HOSPITAL, "record.add", anchor(ledger))  # now in its care, for that category
    ledger.ok(HOSPITAL, "record.add", anchor(ledger, "imaging", b"at the registering hospital"))
    ledger.ok(PATIENT, "record.add", anchor(ledger, "mental-health", b"self-reported"))


@pytest.mark.parametrize("purpose", sorted(PURPOSES))
def test_a_reader_states_only_a_purpose_that_fits_its_role(ledger: LedgerHarness, purpose: str) -> None:
    researcher = key("researcher")
    ledger.register_person(HOSPITAL, researcher, "researcher")
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    grant = ConsentGrant(PATIENT.public_key, researcher.public_key, ("laboratory",), purpose, ledger.time_ms + YEAR_MS)
    ledger.ok(PATIENT, "consent.grant", grant)
    result = ledger.run(researcher, "record.read", RecordRead(anchor(ledger).record_id, purpose, False, ""))
    assert result.ok == (purpose in PURPOSES_OF["researcher"]), result.detail
    if not result.ok:
        assert f"a researcher may not read for {purpose}" in result.detail


def test_staff_of_a_revoked_organisation_lose_their_standing_its_patients_keep_theirs(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    grant = ConsentGrant(PATIENT.public_key, HOSPITAL.public_key, ("laboratory",), "TREAT", ledger.time_ms + YEAR_MS)
    ledger.ok(PATIENT, "consent.grant", grant)
    ledger.ok(DOCTOR, "record.read", RecordRead(anchor(ledger).record_id, "TREAT", False, ""))
    for validator in ledger.validators[: quorum_size(len(ledger.validators))]:
        ledger.ok(validator, "identity.org.revoke", OrgRevoke(HOSPITAL.public_key))
    assert person_of(ledger.state, DOCTOR.public_key) is None
    read = RecordRead(anchor(ledger).record_id, "ETREAT", True, "unconscious")
    assert "only a clinician in force" in ledger.refused(DOCTOR, "record.read", read, RejectReason.NOT_AUTHORISED)
    assert person_of(ledger.state, PATIENT.public_key) is not None
    ledger.ok(PATIENT, "record.read", RecordRead(anchor(ledger).record_id, "PATRQT", False, ""))


def test_docs_print_the_table_the_rules_use() -> None:
    docs = Path(__file__).parent.parent / "docs" / "access.md"
    assert table_markdown() in docs.read_text(), "regenerate the table in docs/access.md from policy.table_markdown()"


def test_a_clinician_breaks_the_glass_a_bounded_number_of_times_a_day(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    glass = RecordRead(anchor(ledger).record_id, "ETREAT", True, "unconscious, allergy check")
    for _ in range(BREAK_GLASS_PER_WINDOW):
        ledger.ok(DOCTOR, "record.read", glass)
    detail = ledger.refused(DOCTOR, "record.read", glass, RejectReason.NOT_AUTHORISED)
    assert f"at most {BREAK_GLASS_PER_WINDOW} times in 24 hours" in detail
    ledger.time_ms += BREAK_GLASS_WINDOW_MS  # a day later the allowance is back
    ledger.ok(DOCTOR, "record.read", glass)
