"""Research studies on the ledger: who registers and approves them, study-scoped consent and
withdrawal, reads for a study, and export anchors, each against an adversary."""

from __future__ import annotations

import dataclasses
import hashlib

from click.testing import CliRunner

from ledger_harness import START_MS, LedgerHarness, key
from p2pmed.cli.main import cli
from p2pmed.ledger.contracts.audit import audit_trail
from p2pmed.ledger.contracts.consent import (
    ConsentDelegate,
    ConsentDeny,
    ConsentGrant,
    StudyConsent,
    StudyWithdraw,
    study_consent,
    study_participants,
)
from p2pmed.ledger.contracts.identity import OrgRevoke
from p2pmed.ledger.contracts.records import RecordRead
from p2pmed.ledger.contracts.research import ResearchExport, exports_of
from p2pmed.ledger.contracts.studies import StudyApprove, StudyRegister, StudyTerms, study, study_digest
from p2pmed.ledger.errors import RejectReason
from p2pmed.quorum import quorum_size

SPONSOR, HOSPITAL, PHARMACY, LAB = key("sponsor"), key("hospital"), key("pharmacy"), key("lab")
RESEARCHER, CLINICIAN, GUARDIAN = key("researcher"), key("clinician"), key("guardian")
PATIENTS = [key(f"patient-{index}") for index in range(4)]
FAR_MS = 4_102_444_800_000
YEAR_MS = 365 * 24 * 3600 * 1000
STUDY, OTHER = "DIAB-2027-01", "CARDIO-2027-02"
MANIFEST = hashlib.sha256(b"manifest").digest()


def terms(**changes: object) -> StudyTerms:
    fields: dict[str, object] = {
        "ethics_approval": "IRB-2027-0042",
        "data_use_agreement_sha256": hashlib.sha256(b"dua").digest(),
        "categories": ("laboratory", "condition"),
        "deidentification": "safe-harbor",
        "k_anonymity": 2,
        "start_ms": START_MS,
        "end_ms": START_MS + 5 * YEAR_MS,
    }
    return StudyTerms(**(fields | changes))  # type: ignore[arg-type]


def approve(ledger: LedgerHarness, study_id: str) -> None:
    found = study(ledger.state, study_id)
    assert found is not None
    for validator in ledger.validators[: quorum_size(len(ledger.validators))]:
        ledger.ok(validator, "research.study.approve", StudyApprove(study_id, study_digest(found)))


def world() -> LedgerHarness:
    """A sponsor with a researcher, a hospital with four patients, two approved studies."""
    ledger = LedgerHarness()
    for organisation, kind in (
        (SPONSOR, "sponsor"),
        (HOSPITAL, "hospital"),
        (PHARMACY, "pharmacy"),
        (LAB, "laboratory"),
    ):
        ledger.admit_organisation(organisation, kind)
    ledger.register_person(SPONSOR, RESEARCHER, "researcher")
    ledger.register_person(HOSPITAL, CLINICIAN, "clinician")
    ledger.register_person(HOSPITAL, GUARDIAN, "patient")
    for patient in PATIENTS:
        ledger.register_person(HOSPITAL, patient, "patient")
    for study_id in (STUDY, OTHER):
        ledger.ok(SPONSOR, "research.study.register", StudyRegister(study_id, terms()))
        approve(ledger, study_id)
    return ledger


def record_of(ledger: LedgerHarness, patient: bytes, category: str = "laboratory") -> bytes:
    record_id = hashlib.sha256(patient + category.encode()).digest()
    ledger.ok(CLINICIAN, "record.add", ledger.anchor(record_id, patient, category))
    return record_id


def contract_state(ledger: LedgerHarness) -> dict[str, bytes]:
    """The state the contracts keep, without the ledger's clock and the senders' nonces."""
    return {k: v for k, v in ledger.state.data.items() if not k.startswith(("ledger/", "nonce/"))}


def ids(count: int) -> tuple[bytes, ...]:
    return tuple(sorted(patient.public_key for patient in PATIENTS[:count]))


# -- registration and approval ---------------------------------------------------------


def test_only_an_organisation_that_reads_for_research_registers_a_study() -> None:
    ledger = world()
    for signer in (PHARMACY, LAB, RESEARCHER, CLINICIAN, PATIENTS[0]):
        detail = ledger.refused(
            signer, "research.study.register", StudyRegister("NEW-1", terms()), RejectReason.NOT_AUTHORISED
        )
        assert "hospital, sponsor" in detail
    ledger.ok(HOSPITAL, "research.study.register", StudyRegister("NEW-1", terms()))


def test_a_registered_study_is_closed_until_a_quorum_of_validators_approves_it() -> None:
    ledger = world()
    ledger.ok(SPONSOR, "research.study.register", StudyRegister("ROGUE-1", terms()))
    patient = PATIENTS[0].public_key
    detail = ledger.refused(PATIENTS[0], "consent.study", StudyConsent(patient, "ROGUE-1"), RejectReason.INVALID)
    assert "no approved study ROGUE-1" in detail
    found = study(ledger.state, "ROGUE-1")
    assert found is not None
    ledger.refused(
        SPONSOR, "research.study.approve", StudyApprove("ROGUE-1", study_digest(found)), RejectReason.NOT_AUTHORISED
    )
    wrong = hashlib.sha256(b"other terms").digest()
    assert "does not match" in ledger.refused(
        ledger.validators[0], "research.study.approve", StudyApprove("ROGUE-1", wrong), RejectReason.INVALID
    )
    for validator in ledger.validators[: quorum_size(len(ledger.validators)) - 1]:
        ledger.ok(validator, "research.study.approve", StudyApprove("ROGUE-1", study_digest(found)))
    assert study(ledger.state, "ROGUE-1").approved_height is None  # type: ignore[union-attr]
    ledger.ok(ledger.validators[-1], "research.study.approve", StudyApprove("ROGUE-1", study_digest(found)))
    ledger.ok(PATIENTS[0], "consent.study", StudyConsent(patient, "ROGUE-1"))


def test_bad_registrations_are_refused_and_change_nothing() -> None:
    ledger = world()
    for study_id, bad in (
        ("lower-case", terms()),
        ("X", terms()),
        ("BAD-1", terms(k_anonymity=1)),
        ("BAD-1", terms(deidentification="none")),
        ("BAD-1", terms(categories=())),
        ("BAD-1", terms(categories=("laboratory", "laboratory"))),
        ("BAD-1", terms(categories=("gossip",))),
        ("BAD-1", terms(ethics_approval="")),
        ("BAD-1", terms(ethics_approval="IRB\n1")),
        ("BAD-1", terms(data_use_agreement_sha256=b"short")),
        ("BAD-1", terms(end_ms=START_MS)),
        ("BAD-1", terms(end_ms=START_MS + 21 * YEAR_MS)),
        ("BAD-1", terms(start_ms=0, end_ms=1)),
    ):
        before = contract_state(ledger)
        ledger.refused(SPONSOR, "research.study.register", StudyRegister(study_id, bad), RejectReason.INVALID)
        assert contract_state(ledger) == before
    ledger.refused(SPONSOR, "research.study.register", StudyRegister(STUDY, terms()), RejectReason.DUPLICATE)


# -- consent scoped to one study ----------------------------------------------------------


def test_consent_to_one_study_opens_that_study_and_no_other() -> None:
    ledger = world()
    patient = PATIENTS[0].public_key
    record_id = record_of(ledger, patient)
    ledger.ok(PATIENTS[0], "consent.study", StudyConsent(patient, STUDY))
    ledger.ok(SPONSOR, "record.read", RecordRead(record_id, "HRESCH", False, study=STUDY))
    detail = ledger.refused(
        SPONSOR, "record.read", RecordRead(record_id, "HRESCH", False, study=OTHER), RejectReason.NOT_AUTHORISED
    )
    assert f"no consent in force to study {OTHER}" in detail
    # nor is it an HRESCH consent to the sponsor for reads outside a study
    ledger.refused(SPONSOR, "record.read", RecordRead(record_id, "HRESCH", False), RejectReason.NOT_AUTHORISED)
    assert study_consent(ledger.state, patient, OTHER, ledger.time_ms) is None


def test_a_plain_research_consent_to_the_organisation_does_not_put_a_patient_in_a_study() -> None:
    ledger = world()
    patient = PATIENTS[0].public_key
    record_id = record_of(ledger, patient)
    ledger.ok(
        PATIENTS[0], "consent.grant", ConsentGrant(patient, SPONSOR.public_key, ("laboratory",), ("HRESCH",), FAR_MS)
    )
    ledger.refused(
        SPONSOR, "record.read", RecordRead(record_id, "HRESCH", False, study=STUDY), RejectReason.NOT_AUTHORISED
    )
    ledger.refused(SPONSOR, "research.export", ResearchExport(STUDY, MANIFEST, 1, ids(2)), RejectReason.NOT_AUTHORISED)


def test_study_reads_are_by_its_organisation_for_its_categories_for_research_only() -> None:
    ledger = world()
    patient = PATIENTS[0].public_key
    lab_result = record_of(ledger, patient)
    medication = record_of(ledger, patient, "medication")
    ledger.ok(PATIENTS[0], "consent.study", StudyConsent(patient, STUDY))
    ledger.ok(RESEARCHER, "record.read", RecordRead(lab_result, "HRESCH", False, study=STUDY))
    assert "did not ask for medication" in ledger.refused(
        SPONSOR, "record.read", RecordRead(medication, "HRESCH", False, study=STUDY), RejectReason.NOT_AUTHORISED
    )
    assert "organisation or its researchers" in ledger.refused(
        HOSPITAL, "record.read", RecordRead(lab_result, "HRESCH", False, study=STUDY), RejectReason.NOT_AUTHORISED
    )
    ledger.refused(
        SPONSOR, "record.read", RecordRead(lab_result, "CLINTRL", False, study=STUDY), RejectReason.NOT_AUTHORISED
    )
    ledger.refused(
        CLINICIAN, "record.read", RecordRead(lab_result, "HRESCH", False, study=STUDY), RejectReason.NOT_AUTHORISED
    )
    trail = audit_trail(ledger.state, "patient", patient)
    read = [entry for entry in trail if entry.kind == "record-read"]
    assert read[0].purpose == "HRESCH" and STUDY in read[0].detail


def test_a_deny_overrides_a_study_consent() -> None:
    ledger = world()
    patient = PATIENTS[0].public_key
    record_id = record_of(ledger, patient)
    ledger.ok(PATIENTS[0], "consent.study", StudyConsent(patient, STUDY))
    ledger.ok(PATIENTS[0], "consent.deny", ConsentDeny(patient, b"", ("laboratory",), ("HRESCH",), FAR_MS))
    detail = ledger.refused(
        SPONSOR, "record.read", RecordRead(record_id, "HRESCH", False, study=STUDY), RejectReason.NOT_AUTHORISED
    )
    assert "deny" in detail


def test_an_organisation_delegate_cannot_enrol_its_patients_in_research() -> None:
    """The hospital keeps the patient's records as their delegate, for every purpose: it must
    still not be able to consent them into a study, its own or another's."""
    ledger = world()
    patient = PATIENTS[0].public_key
    ledger.ok(PATIENTS[0], "consent.delegate", ConsentDelegate(HOSPITAL.public_key, FAR_MS))
    ledger.ok(HOSPITAL, "research.study.register", StudyRegister("HOSP-1", terms()))
    approve(ledger, "HOSP-1")
    for study_id in (STUDY, "HOSP-1"):
        detail = ledger.refused(HOSPITAL, "consent.study", StudyConsent(patient, study_id), RejectReason.NOT_AUTHORISED)
        assert "only as a person" in detail
    ledger.ok(PATIENTS[0], "consent.delegate", ConsentDelegate(GUARDIAN.public_key, FAR_MS))
    ledger.ok(GUARDIAN, "consent.study", StudyConsent(patient, STUDY))
    ledger.refused(PATIENTS[1], "consent.study", StudyConsent(patient, OTHER), RejectReason.NOT_AUTHORISED)


def test_withdrawal_ends_reads_and_exports_and_is_audited() -> None:
    ledger = world()
    patient = PATIENTS[0].public_key
    record_id = record_of(ledger, patient)
    for each in PATIENTS[:2]:
        ledger.ok(each, "consent.study", StudyConsent(each.public_key, STUDY))
    assert len(study_participants(ledger.state, STUDY, ledger.time_ms)) == 2
    ledger.ok(PATIENTS[0], "consent.study-withdraw", StudyWithdraw(patient, STUDY))
    assert [p.patient for p in study_participants(ledger.state, STUDY, ledger.time_ms)] == [PATIENTS[1].public_key]
    ledger.refused(
        SPONSOR, "record.read", RecordRead(record_id, "HRESCH", False, study=STUDY), RejectReason.NOT_AUTHORISED
    )
    detail = ledger.refused(
        SPONSOR, "research.export", ResearchExport(STUDY, MANIFEST, 1, ids(2)), RejectReason.NOT_AUTHORISED
    )
    assert "withdrawn" in detail
    ledger.refused(PATIENTS[0], "consent.study-withdraw", StudyWithdraw(patient, STUDY), RejectReason.INVALID)
    kinds = [entry.kind for entry in audit_trail(ledger.state, "patient", patient)]
    assert kinds.count("consent-study") == 1 and kinds.count("consent-study-withdraw") == 1


def test_a_revoked_organisation_s_study_closes() -> None:
    ledger = world()
    patient = PATIENTS[0].public_key
    ledger.ok(PATIENTS[0], "consent.study", StudyConsent(patient, STUDY))
    for validator in ledger.validators[: quorum_size(len(ledger.validators))]:
        ledger.ok(validator, "identity.org.revoke", OrgRevoke(SPONSOR.public_key))
    ledger.refused(PATIENTS[1], "consent.study", StudyConsent(PATIENTS[1].public_key, STUDY), RejectReason.INVALID)


# -- export anchors -------------------------------------------------------------------------


def test_an_export_is_anchored_and_listed_for_each_patient_in_it() -> None:
    ledger = world()
    for each in PATIENTS[:3]:
        ledger.ok(each, "consent.study", StudyConsent(each.public_key, STUDY))
    ledger.ok(RESEARCHER, "research.export", ResearchExport(STUDY, MANIFEST, 7, ids(3)))
    for each in PATIENTS[:3]:
        (anchor,) = exports_of(ledger.state, each.public_key)
        assert (anchor.study_id, anchor.manifest_sha256, anchor.patients) == (STUDY, MANIFEST, 3)
        assert anchor.organisation == SPONSOR.public_key and anchor.exporter == RESEARCHER.public_key
        (entry,) = [e for e in audit_trail(ledger.state, "patient", each.public_key) if e.kind == "research-export"]
        assert entry.purpose == "HRESCH" and SPONSOR.public_key.hex() in entry.detail and MANIFEST.hex() in entry.detail
    assert exports_of(ledger.state, PATIENTS[3].public_key) == []


def test_bad_exports_are_refused() -> None:
    ledger = world()
    for each in PATIENTS[:3]:
        ledger.ok(each, "consent.study", StudyConsent(each.public_key, STUDY))
    good = ResearchExport(STUDY, MANIFEST, 3, ids(3))
    for bad, reason in (
        (dataclasses.replace(good, patients=ids(1)), RejectReason.INVALID),  # fewer than k
        (dataclasses.replace(good, patients=tuple(reversed(ids(3)))), RejectReason.INVALID),
        (dataclasses.replace(good, patients=(ids(2)[0], ids(2)[0])), RejectReason.INVALID),
        (dataclasses.replace(good, manifest_sha256=b"x"), RejectReason.INVALID),
        (dataclasses.replace(good, records=0), RejectReason.INVALID),
        (dataclasses.replace(good, study_id="NOPE-1"), RejectReason.INVALID),
        (dataclasses.replace(good, study_id=OTHER), RejectReason.NOT_AUTHORISED),  # no consent to OTHER
    ):
        ledger.refused(SPONSOR, "research.export", bad, reason)
    for outsider in (HOSPITAL, CLINICIAN, PATIENTS[0]):
        ledger.refused(outsider, "research.export", good, RejectReason.NOT_AUTHORISED)
    assert all(exports_of(ledger.state, each.public_key) == [] for each in PATIENTS)
    assert not any(k.startswith("research-export/") for k in contract_state(ledger))


def test_the_cli_refuses_bad_input_before_asking_a_node() -> None:
    base = ["research", "register", "S-1", "--home", "/nonexistent", "--key", "/nonexistent/key.pem"]
    terms_args = ["--ethics", "IRB-1", "--category", "laboratory", "--k", "2", "--start", "2027-01-01"]
    both = CliRunner().invoke(cli, [*base, *terms_args, "--end", "2028-01-01", "--dua-sha256", "ab" * 32, "--dua", "x"])
    assert both.exit_code == 2 and "exactly one of --dua" in both.output
    low_k = CliRunner().invoke(cli, [*base, *terms_args[:-4], "--k", "1", "--start", "2027-01-01", "--end", "2028"])
    assert low_k.exit_code == 2
