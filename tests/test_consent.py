"""Consent rules: the patient (or a delegate they named) grants and revokes, for several
purposes at once, and records denies that override every permit; with every refusal and
its reason; each change is an audit entry."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ledger_harness import LedgerHarness, glass, key, person_rotation
from p2pmed import codec
from p2pmed.ledger.contracts.audit import NETWORK_COUNT_KEY, audit_trail, count_key, record_event
from p2pmed.ledger.contracts.consent import (
    EVERYONE,
    NEVER_MS,
    ConsentDelegate,
    ConsentDeny,
    ConsentGrant,
    ConsentProvision,
    ConsentRevoke,
    ConsentUndelegate,
    ConsentUndeny,
    consents_in_force,
    delegations_in_force,
    denies_in_force,
    deny_covering,
    valid_consent,
)
from p2pmed.ledger.contracts.identity import PersonRevoke
from p2pmed.ledger.contracts.records import RecordRead
from p2pmed.ledger.errors import RejectReason
from p2pmed.ledger.rules import TxContext
from p2pmed.ledger.state import StateOverlay

HOSPITAL, LAB = key("hospital"), key("lab")
PATIENT, OTHER_PATIENT, DOCTOR, CARER = key("patient"), key("other-patient"), key("doctor"), key("carer")
P = PATIENT.public_key
YEAR_MS = 365 * 86_400_000


@pytest.fixture
def ledger() -> LedgerHarness:
    harness = LedgerHarness()
    harness.admit_organisation(HOSPITAL, "hospital")
    harness.admit_organisation(LAB, "laboratory")
    for person, role in ((PATIENT, "patient"), (OTHER_PATIENT, "patient"), (DOCTOR, "clinician"), (CARER, "patient")):
        harness.register_person(HOSPITAL, person, role)
    return harness


def grant(ledger: LedgerHarness, grantee: bytes = DOCTOR.public_key, **changes: Any) -> ConsentGrant:
    fields = {
        "patient": P,
        "grantee": grantee,
        "categories": ("laboratory",),
        "purposes": ("TREAT",),
        "expires_ms": ledger.time_ms + YEAR_MS,
        **changes,
    }
    return ConsentGrant(**fields)


def in_force(ledger: LedgerHarness, grantee: bytes, category: str = "laboratory") -> ConsentProvision | None:
    return valid_consent(ledger.state, P, grantee, category, ledger.time_ms)


def test_a_patient_grants_a_person_or_an_organisation_each_category(ledger: LedgerHarness) -> None:
    ledger.ok(PATIENT, "consent.grant", grant(ledger, categories=("laboratory", "imaging"), purposes=("ETREAT",)))
    provision = in_force(ledger, DOCTOR.public_key, "imaging")
    assert provision is not None and (provision.purpose, provision.granted_by, provision.granted_ms) == (
        "ETREAT",
        P,
        ledger.time_ms,
    )
    assert in_force(ledger, DOCTOR.public_key, "genomics") is None
    ledger.ok(PATIENT, "consent.grant", grant(ledger, grantee=LAB.public_key))
    assert in_force(ledger, LAB.public_key) is not None


def test_consent_ends_at_its_expiry(ledger: LedgerHarness) -> None:
    expires = ledger.time_ms + 5_000
    ledger.ok(PATIENT, "consent.grant", grant(ledger, expires_ms=expires))
    assert valid_consent(ledger.state, P, DOCTOR.public_key, "laboratory", expires - 1) is not None
    assert valid_consent(ledger.state, P, DOCTOR.public_key, "laboratory", expires) is None


def test_a_later_grant_replaces_the_earlier_and_a_revoke_ends_only_its_categories(ledger: LedgerHarness) -> None:
    ledger.ok(PATIENT, "consent.grant", grant(ledger, categories=("laboratory", "imaging")))
    ledger.ok(PATIENT, "consent.grant", grant(ledger, purposes=("HRESCH",)))
    provision = in_force(ledger, DOCTOR.public_key)
    assert provision is not None and provision.purpose == "HRESCH"
    ledger.ok(PATIENT, "consent.revoke", ConsentRevoke(P, DOCTOR.public_key, ("laboratory",)))
    assert in_force(ledger, DOCTOR.public_key) is None and in_force(ledger, DOCTOR.public_key, "imaging") is not None


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"grantee": P}, "does not need consent to their own records"),
        ({"grantee": bytes(16)}, "32-byte person id or organisation key"),
        ({"grantee": key("stranger").public_key}, "neither a person nor an organisation in force"),
        ({"categories": ("dental",)}, "unknown data category 'dental'"),
        ({"categories": ()}, "give 1..8 categories"),
        ({"categories": ("laboratory", "laboratory")}, "a category is listed twice"),
        ({"purposes": ("MARKETING",)}, "unknown purpose 'MARKETING'"),
        ({"expires_ms": 0}, "would already have expired"),
        ({"patient": DOCTOR.public_key}, "no patient in force"),
    ],
)
def test_a_malformed_grant_is_refused(ledger: LedgerHarness, changes: dict[str, Any], detail: str) -> None:
    assert detail in ledger.refused(PATIENT, "consent.grant", grant(ledger, **changes), RejectReason.INVALID)


def test_only_the_patient_or_a_delegate_changes_consent(ledger: LedgerHarness) -> None:
    for stranger in (DOCTOR, OTHER_PATIENT, HOSPITAL, key("unregistered")):
        detail = ledger.refused(
            stranger, "consent.grant", grant(ledger, grantee=LAB.public_key), RejectReason.NOT_AUTHORISED
        )
        assert "only the patient or a delegate" in detail
    ledger.ok(PATIENT, "consent.grant", grant(ledger))
    revoke = ConsentRevoke(P, DOCTOR.public_key, ("laboratory",))
    assert "only the patient" in ledger.refused(DOCTOR, "consent.revoke", revoke, RejectReason.NOT_AUTHORISED)
    assert in_force(ledger, DOCTOR.public_key) is not None


def test_a_grant_for_another_purpose_adds_to_the_first_and_a_revoke_ends_every_purpose(ledger: LedgerHarness) -> None:
    ledger.ok(PATIENT, "consent.grant", grant(ledger, purposes=("TREAT",)))
    ledger.ok(PATIENT, "consent.grant", grant(ledger, purposes=("HPAYMT",)))
    now = ledger.time_ms
    for purpose in ("TREAT", "HPAYMT"):
        found = valid_consent(ledger.state, P, DOCTOR.public_key, "laboratory", now, purpose)
        assert found is not None and found.purpose == purpose, f"{purpose} still in force"
    assert len(list(consents_in_force(ledger.state, P, now))) == 2
    ledger.ok(PATIENT, "consent.revoke", ConsentRevoke(P, DOCTOR.public_key, ("laboratory",)))
    assert in_force(ledger, DOCTOR.public_key) is None and not list(consents_in_force(ledger.state, P, ledger.time_ms))


def test_a_delegate_grants_and_revokes_only_the_categories_and_purposes_it_was_given(ledger: LedgerHarness) -> None:
    scope = ConsentDelegate(CARER.public_key, ledger.time_ms + 2 * YEAR_MS, ("laboratory",), ("TREAT",))
    ledger.ok(PATIENT, "consent.delegate", scope)
    assert "does not cover the category imaging" in ledger.refused(
        CARER, "consent.grant", grant(ledger, categories=("imaging",)), RejectReason.NOT_AUTHORISED
    )
    assert "does not cover the purpose HRESCH" in ledger.refused(
        CARER, "consent.grant", grant(ledger, purposes=("HRESCH",)), RejectReason.NOT_AUTHORISED
    )
    ledger.ok(CARER, "consent.grant", grant(ledger))
    ledger.ok(PATIENT, "consent.grant", grant(ledger, categories=("imaging",)))
    revoke_imaging = ConsentRevoke(P, DOCTOR.public_key, ("imaging",))
    assert "does not cover the category imaging" in ledger.refused(
        CARER, "consent.revoke", revoke_imaging, RejectReason.NOT_AUTHORISED
    )
    ledger.ok(CARER, "consent.revoke", ConsentRevoke(P, DOCTOR.public_key, ("laboratory",)))
    (delegation,) = delegations_in_force(ledger.state, P, ledger.time_ms)
    assert (delegation.categories, delegation.purposes) == (("laboratory",), ("TREAT",))
    assert "purposes must be distinct, known ones" in ledger.refused(
        PATIENT,
        "consent.delegate",
        ConsentDelegate(HOSPITAL.public_key, ledger.time_ms + YEAR_MS, (), ("SNOOP",)),
        RejectReason.INVALID,
    )


def test_a_delegate_acts_within_its_delegation_and_what_it_granted_lapses_with_it(ledger: LedgerHarness) -> None:
    until = ledger.time_ms + YEAR_MS
    ledger.ok(PATIENT, "consent.delegate", ConsentDelegate(HOSPITAL.public_key, until))
    assert "may not grant consent to itself" in ledger.refused(
        HOSPITAL, "consent.grant", grant(ledger, HOSPITAL.public_key), RejectReason.NOT_AUTHORISED
    )
    assert "may not outlive its delegation" in ledger.refused(
        HOSPITAL, "consent.grant", grant(ledger, expires_ms=until + 1), RejectReason.NOT_AUTHORISED
    )
    ledger.ok(HOSPITAL, "consent.grant", grant(ledger, expires_ms=until))
    ledger.ok(PATIENT, "consent.grant", grant(ledger, LAB.public_key))  # the patient's own: unaffected below
    assert in_force(ledger, DOCTOR.public_key) is not None
    ledger.ok(PATIENT, "consent.undelegate", ConsentUndelegate(HOSPITAL.public_key))
    assert in_force(ledger, DOCTOR.public_key) is None, "removing the delegate removes what it granted"
    assert [p.grantee for p in consents_in_force(ledger.state, P, ledger.time_ms)] == [LAB.public_key]


def test_what_a_revoked_delegate_granted_lapses(ledger: LedgerHarness) -> None:
    """A delegate the validators (or its organisation) revoke is as good as removed: the grants
    and denies it made in the patient's name lapse, and the patient's own stay."""
    ledger.ok(PATIENT, "consent.delegate", ConsentDelegate(CARER.public_key, ledger.time_ms + 2 * YEAR_MS))
    ledger.ok(CARER, "consent.grant", grant(ledger))
    ledger.ok(PATIENT, "consent.grant", grant(ledger, LAB.public_key))
    assert in_force(ledger, DOCTOR.public_key) is not None
    for validator in ledger.validators[:3]:  # 2f+1 of 4
        ledger.ok(validator, "identity.person.revoke", PersonRevoke(CARER.public_key))
    assert in_force(ledger, DOCTOR.public_key) is None, "the revoked delegate's grant lapsed"
    assert [p.grantee for p in consents_in_force(ledger.state, P, ledger.time_ms)] == [LAB.public_key]
    assert delegations_in_force(ledger.state, P, ledger.time_ms) == []


def test_a_delegate_grants_and_revokes_for_the_patient_until_removed_or_expired(ledger: LedgerHarness) -> None:
    ledger.ok(PATIENT, "consent.delegate", ConsentDelegate(CARER.public_key, ledger.time_ms + 2 * YEAR_MS))
    ledger.ok(CARER, "consent.grant", grant(ledger))
    provision = in_force(ledger, DOCTOR.public_key)
    assert provision is not None and provision.granted_by == CARER.public_key
    ledger.ok(PATIENT, "consent.undelegate", ConsentUndelegate(CARER.public_key))
    revoke = ConsentRevoke(P, DOCTOR.public_key, ("laboratory",))
    assert "only the patient or a delegate" in ledger.refused(
        CARER, "consent.revoke", revoke, RejectReason.NOT_AUTHORISED
    )
    ledger.ok(PATIENT, "consent.delegate", ConsentDelegate(HOSPITAL.public_key, ledger.time_ms + 2_500))
    ledger.ok(HOSPITAL, "consent.revoke", revoke)  # a site acting for the patient
    assert in_force(ledger, DOCTOR.public_key) is None
    expired = ledger.refused(HOSPITAL, "consent.grant", grant(ledger), RejectReason.NOT_AUTHORISED)  # 1 s per block
    assert "delegate" in expired


def test_delegation_is_the_patients_alone_to_give(ledger: LedgerHarness) -> None:
    delegate = ConsentDelegate(CARER.public_key, ledger.time_ms + YEAR_MS)
    assert "registered patient" in ledger.refused(DOCTOR, "consent.delegate", delegate, RejectReason.NOT_AUTHORISED)
    assert "themself" in ledger.refused(
        PATIENT, "consent.delegate", ConsentDelegate(P, ledger.time_ms + YEAR_MS), RejectReason.INVALID
    )
    stranger = ConsentDelegate(key("stranger").public_key, ledger.time_ms + YEAR_MS)
    assert "in force" in ledger.refused(PATIENT, "consent.delegate", stranger, RejectReason.INVALID)
    past = ConsentDelegate(CARER.public_key, 0)
    assert "already have expired" in ledger.refused(PATIENT, "consent.delegate", past, RejectReason.INVALID)
    nobody = ConsentUndelegate(CARER.public_key)
    assert "no such delegate" in ledger.refused(PATIENT, "consent.undelegate", nobody, RejectReason.INVALID)


def test_revoking_what_is_not_in_force_is_refused(ledger: LedgerHarness) -> None:
    revoke = ConsentRevoke(P, DOCTOR.public_key, ("laboratory",))
    assert "no consent in force" in ledger.refused(PATIENT, "consent.revoke", revoke, RejectReason.INVALID)


def test_a_patient_who_rotated_keys_keeps_control_under_the_new_key_only(ledger: LedgerHarness) -> None:
    new_key = key("patient-new")
    ledger.ok(PATIENT, "identity.person.rotate", person_rotation(PATIENT, new_key))
    ledger.ok(new_key, "consent.grant", grant(ledger))
    assert in_force(ledger, DOCTOR.public_key) is not None, "consent stays keyed by the person id"
    assert "only the patient" in ledger.refused(PATIENT, "consent.grant", grant(ledger), RejectReason.NOT_AUTHORISED)


def test_every_consent_change_is_an_audit_entry_for_the_patient(ledger: LedgerHarness) -> None:
    ledger.ok(PATIENT, "consent.delegate", ConsentDelegate(CARER.public_key, ledger.time_ms + 2 * YEAR_MS))
    ledger.ok(CARER, "consent.grant", grant(ledger))
    ledger.ok(PATIENT, "consent.revoke", ConsentRevoke(P, DOCTOR.public_key, ("laboratory",)))
    trail = audit_trail(ledger.state, "patient", P)
    assert [(entry.kind, entry.actor) for entry in trail] == [
        ("consent-delegate", P),
        ("consent-grant", CARER.public_key),
        ("consent-revoke", P),
    ]
    assert [entry.kind for entry in audit_trail(ledger.state, "actor", CARER.public_key)] == ["consent-grant"]
    assert ledger.state.state_get(count_key("patient", P)) == codec.encode(3)
    assert ledger.state.state_get(count_key("actor", CARER.public_key)) == codec.encode(1)
    assert ledger.state.state_get(NETWORK_COUNT_KEY) == codec.encode(3), "one patient's entries so far"


def test_an_entry_recorded_twice_by_one_transaction_is_counted_once(ledger: LedgerHarness) -> None:
    """The count a report proves its completeness with equals the number of entry keys."""
    state = StateOverlay(ledger.state)
    context = TxContext("chain", 7, 1_000, P, bytes(32))
    for kind in ("consent-grant", "consent-revoke"):
        record_event(state, context, kind, P, DOCTOR.public_key)
    assert state.get(int, count_key("patient", P)) == len(audit_trail(ledger.state, "patient", P)) + 1


def test_a_patients_consents_and_delegates_in_force_are_listed(ledger: LedgerHarness) -> None:
    ledger.ok(PATIENT, "consent.grant", grant(ledger, categories=("laboratory", "imaging")))
    ledger.ok(PATIENT, "consent.grant", grant(ledger, grantee=LAB.public_key, expires_ms=ledger.time_ms + 1_500))
    granted_ms = ledger.time_ms  # the lab's consent runs out 500 ms after this block
    ledger.ok(PATIENT, "consent.delegate", ConsentDelegate(CARER.public_key, ledger.time_ms + 2 * YEAR_MS))
    listed = [(provision.grantee, provision.category) for provision in consents_in_force(ledger.state, P, granted_ms)]
    assert sorted(listed) == sorted(
        [(DOCTOR.public_key, "laboratory"), (DOCTOR.public_key, "imaging"), (LAB.public_key, "laboratory")]
    )
    later = [provision.grantee for provision in consents_in_force(ledger.state, P, granted_ms + 500)]
    assert later == [DOCTOR.public_key] * 2, "the lab's consent has expired"
    assert [d.delegate for d in delegations_in_force(ledger.state, P, ledger.time_ms)] == [CARER.public_key]
    assert list(consents_in_force(ledger.state, OTHER_PATIENT.public_key, ledger.time_ms)) == []


# -- several purposes in one grant ---------------------------------------------------------------


def test_one_grant_carries_several_purposes_each_kept_apart(ledger: LedgerHarness) -> None:
    ledger.ok(
        PATIENT, "consent.grant", grant(ledger, categories=("laboratory", "imaging"), purposes=("TREAT", "HPAYMT"))
    )
    now = ledger.time_ms
    held = sorted((p.category, p.purpose) for p in consents_in_force(ledger.state, P, now))
    assert held == [("imaging", "HPAYMT"), ("imaging", "TREAT"), ("laboratory", "HPAYMT"), ("laboratory", "TREAT")]
    assert valid_consent(ledger.state, P, DOCTOR.public_key, "imaging", now, "HRESCH") is None
    ledger.ok(PATIENT, "consent.grant", grant(ledger, purposes=("TREAT",), expires_ms=now + 10_000))
    treat = valid_consent(ledger.state, P, DOCTOR.public_key, "laboratory", ledger.time_ms, "TREAT")
    payment = valid_consent(ledger.state, P, DOCTOR.public_key, "laboratory", ledger.time_ms, "HPAYMT")
    assert treat is not None and payment is not None and treat.expires_ms == now + 10_000 != payment.expires_ms
    [entry, _] = audit_trail(ledger.state, "patient", P)
    assert (entry.kind, entry.category, entry.purpose) == ("consent-grant", "laboratory,imaging", "TREAT,HPAYMT")


@pytest.mark.parametrize(
    ("purposes", "detail"),
    [
        ((), "give 1..7 purposes"),
        (("TREAT", "TREAT"), "a purpose is listed twice"),
        (("TREAT", "SNOOP"), "unknown purpose 'SNOOP'"),
        (("TREAT",) * 8, "give 1..7 purposes"),
    ],
)
def test_a_grant_names_distinct_known_purposes(ledger: LedgerHarness, purposes: tuple[str, ...], detail: str) -> None:
    assert detail in ledger.refused(PATIENT, "consent.grant", grant(ledger, purposes=purposes), RejectReason.INVALID)
    assert list(consents_in_force(ledger.state, P, ledger.time_ms)) == []


def test_a_delegate_grants_only_purposes_its_delegation_covers_all_of_them(ledger: LedgerHarness) -> None:
    scope = ConsentDelegate(CARER.public_key, ledger.time_ms + 2 * YEAR_MS, (), ("TREAT", "HPAYMT"))
    ledger.ok(PATIENT, "consent.delegate", scope)
    assert "does not cover the purpose HRESCH" in ledger.refused(
        CARER, "consent.grant", grant(ledger, purposes=("TREAT", "HRESCH")), RejectReason.NOT_AUTHORISED
    )
    ledger.ok(CARER, "consent.grant", grant(ledger, purposes=("TREAT", "HPAYMT")))


# -- denies ----------------------------------------------------------------------------------------------


def deny(ledger: LedgerHarness, grantee: bytes = DOCTOR.public_key, **changes: Any) -> ConsentDeny:
    fields = {
        "patient": P,
        "grantee": grantee,
        "categories": ("laboratory",),
        "purposes": ("TREAT",),
        "expires_ms": NEVER_MS,
        **changes,
    }
    return ConsentDeny(**fields)


def test_a_deny_overrides_a_permit_given_before_or_after_it_until_lifted(ledger: LedgerHarness) -> None:
    ledger.ok(PATIENT, "consent.grant", grant(ledger, purposes=("TREAT", "HPAYMT")))
    ledger.ok(PATIENT, "consent.deny", deny(ledger))
    now = ledger.time_ms
    assert valid_consent(ledger.state, P, DOCTOR.public_key, "laboratory", now, "TREAT") is None
    assert valid_consent(ledger.state, P, DOCTOR.public_key, "laboratory", now, "HPAYMT") is not None, "not denied"
    found = deny_covering(ledger.state, P, (DOCTOR.public_key,), "laboratory", "TREAT", now)
    assert found is not None and (found.grantee, found.denied_by, found.expires_ms) == (DOCTOR.public_key, P, NEVER_MS)
    ledger.ok(PATIENT, "consent.grant", grant(ledger, purposes=("TREAT",)))  # granted again: the deny still wins
    assert valid_consent(ledger.state, P, DOCTOR.public_key, "laboratory", ledger.time_ms, "TREAT") is None
    ledger.ok(PATIENT, "consent.undeny", ConsentUndeny(P, DOCTOR.public_key, ("laboratory",)))
    restored = valid_consent(ledger.state, P, DOCTOR.public_key, "laboratory", ledger.time_ms, "TREAT")
    assert restored is not None, "lifting the deny restores the permit"
    assert list(denies_in_force(ledger.state, P, ledger.time_ms)) == []


def test_a_deny_of_everyone_binds_every_grantee_and_ends_at_its_expiry(ledger: LedgerHarness) -> None:
    ledger.ok(PATIENT, "consent.grant", grant(ledger))
    ledger.ok(PATIENT, "consent.grant", grant(ledger, LAB.public_key))
    until = ledger.time_ms + 5_000
    ledger.ok(PATIENT, "consent.deny", deny(ledger, EVERYONE, expires_ms=until, purposes=("TREAT", "HRESCH")))
    for grantee in (DOCTOR.public_key, LAB.public_key):
        assert valid_consent(ledger.state, P, grantee, "laboratory", until - 1) is None
        assert valid_consent(ledger.state, P, grantee, "laboratory", until) is not None, "the deny has ended"
    [listed, _] = denies_in_force(ledger.state, P, until - 1)
    assert (listed.grantee, listed.category) == (EVERYONE, "laboratory")
    assert list(denies_in_force(ledger.state, P, until)) == []


@pytest.mark.parametrize(
    ("changes", "detail"),
    [
        ({"grantee": P}, "does not need consent to their own records"),
        ({"grantee": key("stranger").public_key}, "neither a person nor an organisation in force"),
        ({"grantee": bytes(16)}, "32-byte person id or organisation key"),
        ({"categories": ()}, "give 1..8 categories"),
        ({"purposes": ()}, "give 1..7 purposes"),
        ({"purposes": ("TREAT", "TREAT")}, "a purpose is listed twice"),
        ({"expires_ms": 0}, "the deny would already have expired"),
        ({"patient": DOCTOR.public_key}, "no patient in force"),
    ],
)
def test_a_malformed_deny_is_refused(ledger: LedgerHarness, changes: dict[str, Any], detail: str) -> None:
    assert detail in ledger.refused(PATIENT, "consent.deny", deny(ledger, **changes), RejectReason.INVALID)


def test_only_the_patient_or_a_delegate_within_its_delegation_denies_and_what_it_denied_lapses_with_it(
    ledger: LedgerHarness,
) -> None:
    ledger.ok(PATIENT, "consent.grant", grant(ledger))
    for stranger in (DOCTOR, HOSPITAL):
        detail = ledger.refused(stranger, "consent.deny", deny(ledger, LAB.public_key), RejectReason.NOT_AUTHORISED)
        assert "only the patient or a delegate" in detail
    until = ledger.time_ms + YEAR_MS
    ledger.ok(PATIENT, "consent.delegate", ConsentDelegate(CARER.public_key, until, ("laboratory",), ("TREAT",)))
    for changes, detail in (
        ({"categories": ("imaging",), "expires_ms": until}, "does not cover the category imaging"),
        ({"purposes": ("HRESCH",), "expires_ms": until}, "does not cover the purpose HRESCH"),
        ({"expires_ms": NEVER_MS}, "a delegate's deny may not outlive its delegation"),
    ):
        assert detail in ledger.refused(CARER, "consent.deny", deny(ledger, **changes), RejectReason.NOT_AUTHORISED)
    ledger.ok(CARER, "consent.deny", deny(ledger, expires_ms=until))
    assert in_force(ledger, DOCTOR.public_key) is None
    assert "does not cover the category imaging" in ledger.refused(
        CARER, "consent.undeny", ConsentUndeny(P, DOCTOR.public_key, ("imaging",)), RejectReason.NOT_AUTHORISED
    )
    ledger.ok(PATIENT, "consent.undelegate", ConsentUndelegate(CARER.public_key))
    assert in_force(ledger, DOCTOR.public_key) is not None, "the carer's deny lapsed with its delegation"
    nothing = ConsentUndeny(P, LAB.public_key, ("laboratory",))
    assert "no deny recorded" in ledger.refused(PATIENT, "consent.undeny", nothing, RejectReason.INVALID)


def test_denies_and_lifting_them_are_audit_entries_for_the_patient(ledger: LedgerHarness) -> None:
    ledger.ok(PATIENT, "consent.deny", deny(ledger, EVERYONE, categories=("genomics", "mental-health")))
    ledger.ok(PATIENT, "consent.undeny", ConsentUndeny(P, EVERYONE, ("genomics",)))
    trail = audit_trail(ledger.state, "patient", P)
    assert [(e.kind, e.category, e.detail) for e in trail] == [
        ("consent-deny", "genomics,mental-health", "denied everyone"),
        ("consent-undeny", "genomics", "denied everyone"),
    ]
    assert [d.category for d in denies_in_force(ledger.state, P, ledger.time_ms)] == ["mental-health"]


# -- denies and reads ------------------------------------------------------------------------------


def lab_record(ledger: LedgerHarness) -> bytes:
    record_id = hashlib.sha256(b"lab result").digest()
    ledger.ok(HOSPITAL, "record.add", ledger.anchor(record_id, P))
    return record_id


def test_a_read_a_deny_covers_is_refused_naming_the_deny_even_with_a_consent(ledger: LedgerHarness) -> None:
    record_id = lab_record(ledger)
    ledger.ok(PATIENT, "consent.grant", grant(ledger))
    ledger.ok(DOCTOR, "record.read", RecordRead(record_id, "TREAT", False))
    denied = ledger.run(PATIENT, "consent.deny", deny(ledger))
    detail = ledger.refused(DOCTOR, "record.read", RecordRead(record_id, "TREAT", False), RejectReason.NOT_AUTHORISED)
    assert f"the patient's deny {denied.tx_id.hex()[:16]} of {DOCTOR.public_key.hex()[:16]}" in detail
    assert "overrides any consent" in detail
    ledger.ok(PATIENT, "consent.undeny", ConsentUndeny(P, DOCTOR.public_key, ("laboratory",)))
    ledger.ok(DOCTOR, "record.read", RecordRead(record_id, "TREAT", False))


def test_a_deny_of_an_organisation_covers_its_staff_reading_by_any_consent(ledger: LedgerHarness) -> None:
    record_id = lab_record(ledger)
    ledger.ok(PATIENT, "consent.grant", grant(ledger, HOSPITAL.public_key))
    ledger.ok(PATIENT, "consent.grant", grant(ledger))  # the doctor's own consent too
    ledger.ok(PATIENT, "consent.deny", deny(ledger, HOSPITAL.public_key))
    for reader in (DOCTOR, HOSPITAL):
        detail = ledger.refused(
            reader, "record.read", RecordRead(record_id, "TREAT", False), RejectReason.NOT_AUTHORISED
        )
        assert f"of {HOSPITAL.public_key.hex()[:16]} for laboratory, TREAT" in detail


def test_break_glass_overrides_a_deny_and_says_so_on_the_patients_trail(ledger: LedgerHarness) -> None:
    record_id = lab_record(ledger)
    denied = ledger.run(PATIENT, "consent.deny", deny(ledger, EVERYONE, purposes=("ETREAT", "TREAT")))
    ledger.ok(DOCTOR, "record.read", glass(record_id))
    entry = audit_trail(ledger.state, "patient", P)[-1]
    assert entry.kind == "break-glass"
    assert f"overrides the patient's deny {denied.tx_id.hex()[:16]} of everyone for laboratory, ETREAT" in entry.detail
    refused = RecordRead(record_id, "ETREAT", False)
    assert "deny" in ledger.refused(DOCTOR, "record.read", refused, RejectReason.NOT_AUTHORISED)
