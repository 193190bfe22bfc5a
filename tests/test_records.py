"""Record rules: anchors, reads decided by the ledger, break-glass, erasure, audit;
and the property that a reader gets access exactly when the ledger says they may."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_harness import LedgerHarness, glass, key
from p2pmed.client.records import open_reason, seal_reason
from p2pmed.crypto import CryptoError, EncryptionPrivateKey, Kem
from p2pmed.interop.fhir import audit_event
from p2pmed.ledger.contracts.audit import audit_trail
from p2pmed.ledger.contracts.consent import ConsentGrant, ConsentRevoke
from p2pmed.ledger.contracts.records import READ_GRANT_MS, RecordAdd, RecordErase, RecordRead, read_grant, record
from p2pmed.ledger.errors import RejectReason

HOSPITAL, LAB = key("hospital"), key("lab")
PATIENT, DOCTOR, NURSE, RESEARCHER = key("patient"), key("doctor"), key("nurse"), key("researcher")
P = PATIENT.public_key
RECORD_ID = hashlib.sha256(b"record-1").digest()
YEAR_MS = 365 * 86_400_000


@pytest.fixture
def ledger() -> LedgerHarness:
    harness = LedgerHarness()
    harness.admit_organisation(HOSPITAL, "hospital")
    harness.admit_organisation(LAB, "laboratory")
    harness.register_person(HOSPITAL, PATIENT, "patient")
    harness.register_person(HOSPITAL, DOCTOR, "clinician")
    harness.register_person(LAB, NURSE, "clinician")
    harness.register_person(HOSPITAL, RESEARCHER, "researcher")
    return harness


def anchor(ledger: LedgerHarness, **changes: Any) -> RecordAdd:
    return ledger.anchor(**{"record_id": RECORD_ID, "patient": P, **changes})


def read(
    purpose: str = "TREAT", break_glass: bool = False, reason: str = "", record_id: bytes = RECORD_ID
) -> RecordRead:
    """A read; with ``break_glass``, its reason sealed as a client seals it."""
    return glass(record_id, purpose, reason or "x") if break_glass else RecordRead(record_id, purpose, False)


def consent(
    ledger: LedgerHarness, grantee: bytes, purpose: str = "TREAT", category: str = "laboratory"
) -> ConsentGrant:
    return ConsentGrant(P, grantee, (category,), (purpose,), ledger.time_ms + YEAR_MS)


def test_a_lab_writes_an_anchor_and_nothing_of_the_content(ledger: LedgerHarness) -> None:
    ledger.ok(PATIENT, "consent.grant", consent(ledger, LAB.public_key))  # the lab's care relationship
    ledger.ok(LAB, "record.add", anchor(ledger))
    found = record(ledger.state, RECORD_ID)
    assert found is not None and (found.patient, found.writer, found.category, found.erased_ms) == (
        P,
        LAB.public_key,
        "laboratory",
        None,
    )
    ledger.ok(DOCTOR, "record.add", anchor(ledger, record_id=hashlib.sha256(b"record-2").digest()))
    ledger.ok(PATIENT, "record.add", anchor(ledger, record_id=hashlib.sha256(b"record-3").digest()))
    assert [entry.kind for entry in audit_trail(ledger.state, "patient", P)] == ["consent-grant"] + ["record-write"] * 3


@pytest.mark.parametrize(
    ("changes", "reason", "detail"),
    [
        ({"patient": DOCTOR.public_key}, RejectReason.INVALID, "no patient in force"),
        ({"record_id": b"short"}, RejectReason.INVALID, "must be 32 bytes"),
        ({"category": "gossip"}, RejectReason.INVALID, "unknown data category 'gossip'"),
        ({"size": 0}, RejectReason.INVALID, "size 0 is not that of a padded record"),
        ({"size": 1000}, RejectReason.INVALID, "an unpadded size tells everyone the record's exact length"),
        ({"size": (1 << 20) + 28}, RejectReason.INVALID, "of at most 1048576 bytes"),
        ({"threshold": 1}, RejectReason.INVALID, "threshold must be 2..2 for 3 custodians"),
        ({"threshold": 3}, RejectReason.INVALID, "at most custodians - f so f down can"),
        ({"share_sha256": (b"\0" * 32,) * 2}, RejectReason.INVALID, "one 32-byte share digest per custodian"),
        ({"share_sha256": (b"\0" * 31,) * 3}, RejectReason.INVALID, "one 32-byte share digest per custodian"),
        ({"custodians": ()}, RejectReason.INVALID, "at least 3 custodians (2f+1)"),
        ({"custodians": (key("validator-0").public_key,) * 2}, RejectReason.INVALID, "listed twice"),
        (
            {"custodians": (key("validator-0").public_key, key("validator-1").public_key, HOSPITAL.public_key)},
            RejectReason.INVALID,
            "does not run a validator",
        ),
    ],
)
def test_a_malformed_anchor_is_refused(
    ledger: LedgerHarness, changes: dict[str, Any], reason: RejectReason, detail: str
) -> None:
    assert detail in ledger.refused(HOSPITAL, "record.add", anchor(ledger, **changes), reason)


def test_only_clinicians_organisations_and_the_patient_write_and_ids_are_unique(ledger: LedgerHarness) -> None:
    for writer in (key("stranger"),):
        assert "person or an organisation in force" in ledger.refused(
            writer, "record.add", anchor(ledger), RejectReason.NOT_AUTHORISED
        )
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    assert "fresh random id" in ledger.refused(HOSPITAL, "record.add", anchor(ledger), RejectReason.DUPLICATE)


def test_the_patient_reads_their_own_record_and_a_grant_lets_custodians_serve_it(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    ledger.ok(PATIENT, "record.read", read(purpose="PATRQT"))
    grant = read_grant(ledger.state, RECORD_ID, P, ledger.time_ms)
    assert grant is not None and grant.basis == "owner"
    assert read_grant(ledger.state, RECORD_ID, P, grant.expires_ms) is None
    assert grant.expires_ms == ledger.time_ms + READ_GRANT_MS


def test_a_read_needs_consent_for_the_category_and_the_purpose(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    assert "no consent in force" in ledger.refused(DOCTOR, "record.read", read(), RejectReason.NOT_AUTHORISED)
    ledger.ok(PATIENT, "consent.grant", consent(ledger, DOCTOR.public_key, category="imaging"))
    assert "no consent in force" in ledger.refused(DOCTOR, "record.read", read(), RejectReason.NOT_AUTHORISED)
    ledger.ok(PATIENT, "consent.grant", consent(ledger, DOCTOR.public_key, purpose="HPAYMT"))
    assert "no consent in force" in ledger.refused(DOCTOR, "record.read", read(), RejectReason.NOT_AUTHORISED)
    ledger.ok(DOCTOR, "record.read", read(purpose="HPAYMT"))
    grant = read_grant(ledger.state, RECORD_ID, DOCTOR.public_key, ledger.time_ms)
    assert grant is not None and grant.basis == "consent"


def test_consent_to_an_organisation_covers_its_clinicians_only(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    ledger.ok(PATIENT, "consent.grant", consent(ledger, HOSPITAL.public_key))
    ledger.ok(DOCTOR, "record.read", read())
    grant = read_grant(ledger.state, RECORD_ID, DOCTOR.public_key, ledger.time_ms)
    assert grant is not None and grant.basis == "organisation-consent"
    assert "no consent" in ledger.refused(NURSE, "record.read", read(), RejectReason.NOT_AUTHORISED), (
        "the lab's clinician"
    )
    ledger.ok(HOSPITAL, "record.read", read())  # the organisation itself


def test_a_revoked_consent_stops_the_next_read(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    ledger.ok(PATIENT, "consent.grant", consent(ledger, DOCTOR.public_key))
    ledger.ok(DOCTOR, "record.read", read())
    ledger.ok(PATIENT, "consent.revoke", ConsentRevoke(P, DOCTOR.public_key, ("laboratory",)))
    assert "no consent" in ledger.refused(DOCTOR, "record.read", read(), RejectReason.NOT_AUTHORISED)


def test_break_glass_lets_a_clinician_read_without_consent_and_is_audited_as_such(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    ledger.ok(
        DOCTOR, "record.read", read(purpose="ETREAT", break_glass=True, reason="unconscious in A&E, allergy check")
    )
    grant = read_grant(ledger.state, RECORD_ID, DOCTOR.public_key, ledger.time_ms)
    assert grant is not None and grant.basis == "break-glass"
    entry = audit_trail(ledger.state, "patient", P)[-1]
    assert (entry.kind, entry.actor) == ("break-glass", DOCTOR.public_key)
    assert entry.detail.startswith("reason sha256 ") and "unconscious" not in entry.detail, "the reason stays sealed"


@pytest.mark.parametrize(
    ("signer", "request_", "reason", "detail"),
    [
        (
            RESEARCHER,
            read(purpose="HRESCH", break_glass=True, reason="curious"),
            RejectReason.NOT_AUTHORISED,
            "only a clinician in force",
        ),
        (HOSPITAL, read(break_glass=True, reason="x"), RejectReason.NOT_AUTHORISED, "only a clinician in force"),
        (NURSE, read(break_glass=True, reason="x"), RejectReason.NOT_AUTHORISED, "only clinicians of care providers"),
        (DOCTOR, read(purpose="HPAYMT", break_glass=True, reason="x"), RejectReason.NOT_AUTHORISED, "treatment only"),
        (RESEARCHER, read(purpose="TREAT"), RejectReason.NOT_AUTHORISED, "a researcher may not read for TREAT"),
        (DOCTOR, RecordRead(RECORD_ID, "TREAT", True), RejectReason.INVALID, "stated reason, off the ledger"),
        (
            DOCTOR,
            RecordRead(RECORD_ID, "TREAT", True, bytes(32), (b"x" * 4097,)),
            RejectReason.INVALID,
            "stated reason, off the ledger",
        ),
        (
            DOCTOR,
            RecordRead(RECORD_ID, "TREAT", False, bytes(32), (b"sealed",)),
            RejectReason.INVALID,
            "only when breaking the glass",
        ),
        (DOCTOR, read(purpose="SNOOP"), RejectReason.INVALID, "unknown purpose 'SNOOP'"),
        (DOCTOR, read(record_id=bytes(32)), RejectReason.INVALID, "no record has this id"),
    ],
)
def test_bad_reads_are_refused(
    ledger: LedgerHarness, signer: Any, request_: RecordRead, reason: RejectReason, detail: str
) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    assert detail in ledger.refused(signer, "record.read", request_, reason)


def test_erasure_by_the_patient_keeps_the_anchor_and_ends_all_reads(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    ledger.ok(PATIENT, "consent.grant", consent(ledger, DOCTOR.public_key))
    assert "only the patient" in ledger.refused(
        DOCTOR, "record.erase", RecordErase(RECORD_ID), RejectReason.NOT_AUTHORISED
    )
    ledger.ok(PATIENT, "record.erase", RecordErase(RECORD_ID))
    erased = record(ledger.state, RECORD_ID)
    assert erased is not None and erased.erased_ms == ledger.time_ms
    assert "erased" in ledger.refused(DOCTOR, "record.read", read(), RejectReason.NOT_AUTHORISED)
    assert "erased" in ledger.refused(
        DOCTOR, "record.read", read(break_glass=True, reason="x"), RejectReason.NOT_AUTHORISED
    )
    assert "already erased" in ledger.refused(PATIENT, "record.erase", RecordErase(RECORD_ID), RejectReason.INVALID)
    kinds = [entry.kind for entry in audit_trail(ledger.state, "record", RECORD_ID)]
    assert kinds == ["record-write", "record-erase", "record-read-refused", "record-read-refused"]


# -- the property: access exactly when the ledger says so ------------------------------

ACTIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("grant"),
            st.sampled_from(["laboratory", "imaging"]),
            st.sampled_from(["TREAT", "HRESCH"]),
            st.integers(1, 6),
        ),
        st.tuples(st.just("revoke"), st.sampled_from(["laboratory", "imaging"])),
        st.tuples(st.just("wait"), st.integers(1, 5)),
        st.tuples(st.just("read"), st.sampled_from(["TREAT", "HRESCH"])),
    ),
    max_size=25,
)


class Model:
    """What the patient's consents to DOCTOR say, kept by hand: (category, purpose) -> expiry."""

    def __init__(self) -> None:
        self.consents: dict[tuple[str, str], int] = {}

    def may_read(self, purpose: str, now_ms: int) -> bool:
        """A clinician never reads for research (``policy.PURPOSES_OF``), whatever the consent."""
        return purpose != "HRESCH" and self.consents.get(("laboratory", purpose), 0) > now_ms


@settings(max_examples=60, deadline=None)
@given(ACTIONS)
def test_a_reader_gets_access_exactly_when_the_ledger_says_they_may(actions: list[tuple[Any, ...]]) -> None:
    ledger = LedgerHarness()
    ledger.admit_organisation(HOSPITAL, "hospital")
    ledger.register_person(HOSPITAL, PATIENT, "patient")
    ledger.register_person(HOSPITAL, DOCTOR, "clinician")
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    model = Model()
    for action in actions:
        if action[0] == "grant":
            _, category, purpose, blocks = action
            expires = ledger.time_ms + 1_000 + blocks * 1_000
            ledger.ok(PATIENT, "consent.grant", ConsentGrant(P, DOCTOR.public_key, (category,), (purpose,), expires))
            model.consents[(category, purpose)] = expires
        elif action[0] == "revoke":
            result = ledger.run(PATIENT, "consent.revoke", ConsentRevoke(P, DOCTOR.public_key, (action[1],)))
            assert result.ok == any(category == action[1] for category, _ in model.consents)
            model.consents = {held: expiry for held, expiry in model.consents.items() if held[0] != action[1]}
        elif action[0] == "wait":
            ledger.time_ms += action[1] * 1_000
        else:
            block_time = ledger.time_ms + 1_000
            result = ledger.run(DOCTOR, "record.read", read(purpose=action[1]))
            assert result.ok == model.may_read(action[1], block_time), (action, result.detail)
            if result.ok:
                granted = read_grant(ledger.state, RECORD_ID, DOCTOR.public_key, block_time)
                assert granted is not None and granted.tx_id == result.tx_id


def test_a_refused_read_is_on_the_patient_s_audit_trail_with_why_but_not_the_stated_reason(
    ledger: LedgerHarness,
) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    detail = ledger.refused(DOCTOR, "record.read", read(), RejectReason.NOT_AUTHORISED)
    ledger.refused(
        NURSE, "record.read", read("ETREAT", True, "my neighbour, just curious"), RejectReason.NOT_AUTHORISED
    )
    ledger.refused(DOCTOR, "record.read", read(record_id=bytes(32)), RejectReason.INVALID)  # no such record: nothing
    refused = [entry for entry in audit_trail(ledger.state, "patient", P) if entry.kind == "record-read-refused"]
    assert [(entry.actor, entry.purpose, entry.category) for entry in refused] == [
        (DOCTOR.public_key, "TREAT", "laboratory"),
        (NURSE.public_key, "ETREAT", "laboratory"),
    ]
    assert refused[0].detail == detail and refused[1].detail.startswith("break-glass: only clinicians of care")
    assert "neighbour" not in refused[1].detail
    assert read_grant(ledger.state, RECORD_ID, DOCTOR.public_key, ledger.time_ms) is None
    event = audit_event(refused[0])
    assert event["outcome"]["code"]["code"] == "4" and event["code"]["coding"][0]["code"] == "record-read-refused"


def test_a_sealed_break_glass_reason_opens_for_its_recipients_and_matches_the_hash_on_the_ledger() -> None:
    patient, site, stranger = (
        EncryptionPrivateKey.generate(kem) for kem in (Kem.MLKEM768_X25519, Kem.X25519, Kem.X25519)
    )
    digest, sealed = seal_reason("unconscious in A&E", RECORD_ID, [patient.public_key, site.public_key])
    assert [open_reason(copy, key, RECORD_ID, digest) for copy, key in zip(sealed, (patient, site), strict=True)] == [
        "unconscious in A&E"
    ] * 2
    with pytest.raises(CryptoError):
        open_reason(sealed[0], stranger, RECORD_ID, digest)
    with pytest.raises(CryptoError, match="does not match the SHA-256"):
        open_reason(sealed[0], patient, RECORD_ID, hashlib.sha256(b"unconscious in A&E").digest())
    again, _ = seal_reason("unconscious in A&E", RECORD_ID, [patient.public_key])
    assert again != digest, "salted: the same reason gives another hash, so it cannot be guessed from it"
    with pytest.raises(ValueError, match=r"stated reason of 1\.\.500"):
        seal_reason("  ", RECORD_ID, [patient.public_key])
