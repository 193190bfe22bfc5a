"""The access table (``p2pmed.ledger.contracts.policy``) holds against what a careful auditor tried:
each case here was accepted before the table existed."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger_harness import LedgerHarness, glass, key
from p2pmed.crypto import EncryptionPrivateKey, SigningKey
from p2pmed.interop.fhir import audit_event
from p2pmed.ledger.contracts.audit import audit_trail
from p2pmed.ledger.contracts.consent import EVERYONE, ConsentDeny, ConsentGrant, ConsentRevoke, ConsentUndeny
from p2pmed.ledger.contracts.identity import OrgRevoke, PersonRegister, person_of
from p2pmed.ledger.contracts.policy import (
    BREAK_GLASS_PER_WINDOW,
    BREAK_GLASS_WINDOW_MS,
    PURPOSES,
    PURPOSES_OF,
    REGISTRARS,
    table_markdown,
)
from p2pmed.ledger.contracts.records import BreakGlassReview, RecordAdd, RecordRead
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
    return ledger.anchor(hashlib.sha256(label).digest(), PATIENT.public_key, category)


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
        PATIENT.public_key, OTHER_HOSPITAL.public_key, ("laboratory",), ("TREAT",), ledger.time_ms + YEAR_MS
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
    grant = ConsentGrant(
        PATIENT.public_key, researcher.public_key, ("laboratory",), (purpose,), ledger.time_ms + YEAR_MS
    )
    ledger.ok(PATIENT, "consent.grant", grant)
    result = ledger.run(researcher, "record.read", RecordRead(anchor(ledger).record_id, purpose, False))
    assert result.ok == (purpose in PURPOSES_OF["researcher"]), result.detail
    if not result.ok:
        assert f"a researcher may not read for {purpose}" in result.detail


def test_staff_of_a_revoked_organisation_lose_their_standing_its_patients_keep_theirs(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    grant = ConsentGrant(PATIENT.public_key, HOSPITAL.public_key, ("laboratory",), ("TREAT",), ledger.time_ms + YEAR_MS)
    ledger.ok(PATIENT, "consent.grant", grant)
    ledger.ok(DOCTOR, "record.read", RecordRead(anchor(ledger).record_id, "TREAT", False))
    for validator in ledger.validators[: quorum_size(len(ledger.validators))]:
        ledger.ok(validator, "identity.org.revoke", OrgRevoke(HOSPITAL.public_key))
    assert person_of(ledger.state, DOCTOR.public_key) is None
    read = glass(anchor(ledger).record_id)
    assert "only a clinician in force" in ledger.refused(DOCTOR, "record.read", read, RejectReason.NOT_AUTHORISED)
    assert person_of(ledger.state, PATIENT.public_key) is not None
    ledger.ok(PATIENT, "record.read", RecordRead(anchor(ledger).record_id, "PATRQT", False))


def test_docs_print_the_table_the_rules_use() -> None:
    docs = Path(__file__).parent.parent / "docs" / "access.md"
    assert table_markdown() in docs.read_text(), "regenerate the table in docs/access.md from policy.table_markdown()"


def test_a_clinician_breaks_the_glass_a_bounded_number_of_times_a_day(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    emergency = glass(anchor(ledger).record_id)
    for _ in range(BREAK_GLASS_PER_WINDOW):
        ledger.ok(DOCTOR, "record.read", emergency)
    detail = ledger.refused(DOCTOR, "record.read", emergency, RejectReason.NOT_AUTHORISED)
    assert f"at most {BREAK_GLASS_PER_WINDOW} times in 24 hours" in detail
    ledger.time_ms += BREAK_GLASS_WINDOW_MS  # a day later the allowance is back
    ledger.ok(DOCTOR, "record.read", emergency)


# -- the property: a read passes exactly when the table and a consent (or break-glass) allow it --

SITES = {"hospital": key("p-hospital"), "laboratory": key("p-lab"), "sponsor": key("p-sponsor")}
STAFF = {  # name -> (role, registering kind)
    "clinician": ("clinician", "hospital"),
    "lab-clinician": ("clinician", "laboratory"),
    "researcher": ("researcher", "sponsor"),
}
READERS = ["patient", *STAFF, *SITES]
GRANTEES = [*STAFF, *SITES]
MODEL_PURPOSES = ["TREAT", "HRESCH", "ETREAT"]
SOME_PURPOSES = st.lists(st.sampled_from(MODEL_PURPOSES), min_size=1, max_size=3, unique=True).map(tuple)
ACCESS_ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.sampled_from(GRANTEES), SOME_PURPOSES, st.integers(1, 6)),
        st.tuples(st.just("revoke"), st.sampled_from(GRANTEES)),
        st.tuples(st.just("deny"), st.sampled_from([*GRANTEES, "everyone"]), SOME_PURPOSES, st.integers(1, 6)),
        st.tuples(st.just("undeny"), st.sampled_from([*GRANTEES, "everyone"])),
        st.tuples(st.just("revoke-org"), st.sampled_from(sorted(SITES))),
        st.tuples(st.just("wait"), st.integers(1, 5)),
        st.tuples(st.just("read"), st.sampled_from(READERS), st.sampled_from(MODEL_PURPOSES), st.booleans()),
    ),
    max_size=25,
)


class AccessModel:
    """What the table says, computed by hand from the actions alone (never from ledger state)."""

    def __init__(self) -> None:
        self.consents: dict[tuple[str, str], int] = {}  # (grantee, purpose) -> expiry, laboratory only
        self.denies: dict[tuple[str, str], int] = {}  # (grantee or "everyone", purpose) -> expiry
        self.revoked: set[str] = set()  # organisation kinds
        self.break_glass: dict[str, list[int]] = {}

    def kind_or_role(self, reader: str) -> str:
        return STAFF[reader][0] if reader in STAFF else reader

    def in_force(self, party: str) -> bool:
        return STAFF[party][1] not in self.revoked if party in STAFF else party not in self.revoked

    def consented(self, grantee: str, purpose: str, now_ms: int) -> bool:
        return self.in_force(grantee) and self.consents.get((grantee, purpose), 0) > now_ms

    def denied(self, reader: str, purpose: str, now_ms: int) -> bool:
        """A deny of the reader, of the organisation it works for, or of everyone."""
        parties = [reader, STAFF[reader][1], "everyone"] if reader in STAFF else [reader, "everyone"]
        return any(self.denies.get((party, purpose), 0) > now_ms for party in parties)

    def may_read(self, reader: str, purpose: str, glass: bool, now_ms: int) -> bool:
        if reader == "patient":
            return not glass
        if not self.in_force(reader) or purpose not in PURPOSES_OF[self.kind_or_role(reader)]:
            return False
        if glass:  # breaking the glass overrides a deny: it is audited instead
            recent = [t for t in self.break_glass.get(reader, []) if t > now_ms - BREAK_GLASS_WINDOW_MS]
            return (
                reader in STAFF
                and STAFF[reader] == ("clinician", "hospital")
                and purpose in ("ETREAT", "TREAT")
                and len(recent) < BREAK_GLASS_PER_WINDOW
            )
        if self.denied(reader, purpose, now_ms):
            return False
        organisation = STAFF[reader][1] if reader in STAFF else None
        return self.consented(reader, purpose, now_ms) or (
            organisation is not None and self.consented(organisation, purpose, now_ms)
        )


@settings(max_examples=60, deadline=None)
@given(ACCESS_ACTIONS)
def test_a_read_passes_exactly_when_the_table_and_a_consent_or_break_glass_allow_it(
    actions: list[tuple[Any, ...]],
) -> None:
    ledger = LedgerHarness()
    for kind, site in SITES.items():
        ledger.admit_organisation(site, kind)
    people = {name: key(f"p-{name}") for name in ["patient", *STAFF]}
    ledger.register_person(SITES["hospital"], people["patient"], "patient")
    for name, (role, kind) in STAFF.items():
        ledger.register_person(SITES[kind], people[name], role)
    patient = people["patient"].public_key
    signer = {**people, **SITES}
    party = {**{name: signer[name].public_key for name in signer}, "everyone": EVERYONE}
    record_id = hashlib.sha256(b"the record").digest()
    ledger.ok(SITES["hospital"], "record.add", ledger.anchor(record_id, patient))
    model = AccessModel()
    for action in actions:
        now = ledger.time_ms + 1_000  # the next block's time
        if action[0] in ("grant", "deny"):
            kind, grantee, purposes, seconds = action
            body_type = ConsentGrant if kind == "grant" else ConsentDeny
            body = body_type(patient, party[grantee], ("laboratory",), purposes, now + seconds * 1_000)
            result = ledger.run(people["patient"], f"consent.{kind}", body)
            assert result.ok == (grantee == "everyone" or model.in_force(grantee)), result.detail
            held = model.consents if kind == "grant" else model.denies
            held.update({(grantee, purpose): now + seconds * 1_000 for purpose in purposes} if result.ok else {})
        elif action[0] in ("revoke", "undeny"):
            kind, grantee = action
            body_type = ConsentRevoke if kind == "revoke" else ConsentUndeny
            ledger.run(people["patient"], f"consent.{kind}", body_type(patient, party[grantee], ("laboratory",)))
            if kind == "revoke":
                model.consents = {held: t for held, t in model.consents.items() if held[0] != grantee}
            else:
                model.denies = {held: t for held, t in model.denies.items() if held[0] != grantee}
        elif action[0] == "revoke-org":
            if action[1] not in model.revoked:
                for validator in ledger.validators[: quorum_size(len(ledger.validators))]:
                    ledger.ok(validator, "identity.org.revoke", OrgRevoke(SITES[action[1]].public_key))
                model.revoked.add(action[1])
        elif action[0] == "wait":
            ledger.time_ms += action[1] * 1_000
        else:
            _, reader, purpose, breaking = action
            request = glass(record_id, purpose) if breaking else RecordRead(record_id, purpose, False)
            expected = model.may_read(reader, purpose, breaking, now)
            result = ledger.run(signer[reader], "record.read", request)
            assert result.ok == expected, (action, result.detail)
            if result.ok and breaking:
                model.break_glass.setdefault(reader, []).append(now)


def test_the_clinician_s_organisation_reviews_each_break_glass_read_once(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "record.add", anchor(ledger))
    broken = ledger.run(DOCTOR, "record.read", glass(anchor(ledger).record_id))
    assert broken.ok
    review = BreakGlassReview(broken.tx_id, "unjustified")
    assert "the clinician's organisation" in ledger.refused(
        OTHER_HOSPITAL, "record.review", review, RejectReason.NOT_AUTHORISED
    )
    assert "the finding is one of" in ledger.refused(
        HOSPITAL, "record.review", BreakGlassReview(broken.tx_id, "fine"), RejectReason.INVALID
    )
    assert "no break-glass read" in ledger.refused(
        HOSPITAL, "record.review", BreakGlassReview(bytes(32), "justified"), RejectReason.INVALID
    )
    ledger.ok(HOSPITAL, "record.review", review)
    entry = audit_trail(ledger.state, "patient", PATIENT.public_key)[-1]
    assert (entry.kind, entry.actor) == ("break-glass-review", HOSPITAL.public_key)
    assert entry.detail.startswith("unjustified: break-glass read " + broken.tx_id.hex())
    assert "already reviewed: unjustified" in ledger.refused(HOSPITAL, "record.review", review, RejectReason.INVALID)
    assert audit_event(entry)["action"] == "E"
