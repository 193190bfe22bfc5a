"""Identity rules: organisations admitted by 2f+1 validators, people registered by
organisations, key rotation and revocation; each allowed and refused case."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ledger_harness import CHAIN, LedgerHarness, key, org_rotation, person_rotation
from p2pmed.crypto import EncryptionPrivateKey, SignatureDomain
from p2pmed.ledger.contracts.identity import (
    OrganisationProfile,
    OrgProposal,
    OrgRevoke,
    PersonRegister,
    PersonRevoke,
    genesis_state,
    organisation_of,
    person,
    person_of,
    sign_rotation,
)
from p2pmed.ledger.errors import RejectReason
from p2pmed.site.genesis import load_genesis
from p2pmed.site.home import GENESIS, create_testnet
from p2pmed.store.sqlite import Store

HOSPITAL, LAB = key("hospital"), key("lab")
PATIENT, CLINICIAN = key("patient"), key("clinician")


def profile(name: str = "St Mary's", kind: str = "hospital") -> OrganisationProfile:
    return OrganisationProfile(HOSPITAL.public_key, name, kind, EncryptionPrivateKey.generate().public_key)


def fresh_encryption_key():  # type: ignore[no-untyped-def]
    return EncryptionPrivateKey.generate().public_key


@pytest.fixture
def ledger() -> LedgerHarness:
    return LedgerHarness(validators=4)  # f = 1: 3 votes admit


def test_an_organisation_is_in_force_from_the_quorum_th_identical_vote(ledger: LedgerHarness) -> None:
    proposal = OrgProposal(profile())
    for validator in ledger.validators[:2]:
        ledger.ok(validator, "identity.org.propose", proposal)
    assert organisation_of(ledger.state, HOSPITAL.public_key) is None, "2 of 4 is not a quorum"
    ledger.ok(ledger.validators[2], "identity.org.propose", proposal)
    admitted = organisation_of(ledger.state, HOSPITAL.public_key)
    assert admitted is not None and admitted.kind == "hospital" and admitted.since_height == ledger.height


def test_votes_for_different_profiles_do_not_add_up_and_a_validator_may_change_its_vote(ledger: LedgerHarness) -> None:
    first, second = OrgProposal(profile("A")), OrgProposal(profile("B"))
    ledger.ok(ledger.validators[0], "identity.org.propose", first)
    ledger.ok(ledger.validators[1], "identity.org.propose", first)
    ledger.ok(ledger.validators[2], "identity.org.propose", second)
    assert organisation_of(ledger.state, HOSPITAL.public_key) is None
    ledger.ok(ledger.validators[2], "identity.org.propose", first)  # changes its vote: now 3 for A
    admitted = organisation_of(ledger.state, HOSPITAL.public_key)
    assert admitted is not None and admitted.profile.name == "A"


def test_only_validators_vote_on_organisations(ledger: LedgerHarness) -> None:
    detail = ledger.refused(HOSPITAL, "identity.org.propose", OrgProposal(profile()), RejectReason.NOT_AUTHORISED)
    assert "validator" in detail
    ledger.admit_organisation(LAB, "laboratory")
    assert "validator" in ledger.refused(
        HOSPITAL, "identity.org.revoke", OrgRevoke(LAB.public_key), RejectReason.NOT_AUTHORISED
    )


@pytest.mark.parametrize(
    ("bad", "fragment"),
    [
        (profile(kind="spaceport"), "unknown organisation kind 'spaceport'"),
        (profile(name=""), "1..200 printable characters"),
        (profile(name="line\nbreak"), "printable"),
        (OrganisationProfile(b"short", "x", "hospital", EncryptionPrivateKey.generate().public_key), "32-byte"),
    ],
)
def test_a_malformed_organisation_is_refused(ledger: LedgerHarness, bad: OrganisationProfile, fragment: str) -> None:
    assert fragment in ledger.refused(
        ledger.validators[0], "identity.org.propose", OrgProposal(bad), RejectReason.INVALID
    )


def test_an_organisation_in_force_is_not_admitted_twice(ledger: LedgerHarness) -> None:
    ledger.admit_organisation(HOSPITAL, "hospital")
    detail = ledger.refused(ledger.validators[0], "identity.org.propose", OrgProposal(profile()), RejectReason.INVALID)
    assert "already in force" in detail


def test_revoking_an_organisation_takes_a_quorum_and_stops_it_registering_people(ledger: LedgerHarness) -> None:
    ledger.admit_organisation(HOSPITAL, "hospital")
    for validator in ledger.validators[:2]:
        ledger.ok(validator, "identity.org.revoke", OrgRevoke(HOSPITAL.public_key))
    assert organisation_of(ledger.state, HOSPITAL.public_key) is not None
    ledger.ok(ledger.validators[3], "identity.org.revoke", OrgRevoke(HOSPITAL.public_key))
    assert organisation_of(ledger.state, HOSPITAL.public_key) is None
    register = PersonRegister(PATIENT.public_key, "patient", fresh_encryption_key())
    assert "organisation in force" in ledger.refused(
        HOSPITAL, "identity.person.register", register, RejectReason.NOT_AUTHORISED
    )
    unknown = ledger.refused(
        ledger.validators[0], "identity.org.revoke", OrgRevoke(LAB.public_key), RejectReason.INVALID
    )
    assert "no organisation in force" in unknown


def test_an_organisation_registers_people_with_a_role(ledger: LedgerHarness) -> None:
    ledger.admit_organisation(HOSPITAL, "hospital")
    ledger.register_person(HOSPITAL, PATIENT, "patient")
    found = person_of(ledger.state, PATIENT.public_key)
    assert found is not None and (found.id, found.role, found.organisation) == (
        PATIENT.public_key,
        "patient",
        HOSPITAL.public_key,
    )


def test_people_are_registered_only_by_an_organisation_in_force_with_a_known_role(ledger: LedgerHarness) -> None:
    register = PersonRegister(PATIENT.public_key, "patient", fresh_encryption_key())
    assert "organisation in force" in ledger.refused(
        HOSPITAL, "identity.person.register", register, RejectReason.NOT_AUTHORISED
    )
    ledger.admit_organisation(HOSPITAL, "hospital")
    wizard = PersonRegister(PATIENT.public_key, "wizard", fresh_encryption_key())
    assert "unknown role 'wizard'" in ledger.refused(HOSPITAL, "identity.person.register", wizard, RejectReason.INVALID)


def test_a_key_is_never_registered_twice_nor_shared_with_an_organisation(ledger: LedgerHarness) -> None:
    ledger.admit_organisation(HOSPITAL, "hospital")
    ledger.admit_organisation(LAB, "laboratory")
    ledger.register_person(HOSPITAL, PATIENT, "patient")
    again = PersonRegister(PATIENT.public_key, "patient", fresh_encryption_key())
    assert "never reused" in ledger.refused(LAB, "identity.person.register", again, RejectReason.INVALID)
    as_person = PersonRegister(LAB.public_key, "clinician", fresh_encryption_key())
    assert "never reused" in ledger.refused(HOSPITAL, "identity.person.register", as_person, RejectReason.INVALID)
    as_org = OrgProposal(OrganisationProfile(PATIENT.public_key, "X", "clinic", fresh_encryption_key()))
    assert "belongs to a person" in ledger.refused(
        ledger.validators[0], "identity.org.propose", as_org, RejectReason.INVALID
    )


@pytest.mark.parametrize("kind", ["person", "organisation"])
def test_nobody_rotates_onto_a_key_they_do_not_hold(ledger: LedgerHarness, kind: str) -> None:
    """Keys are never reused, so rotating onto someone else's key would burn it (a pending
    admission's, say): the new key must sign the rotation, for this sender and this chain."""
    ledger.admit_organisation(HOSPITAL, "hospital")
    ledger.register_person(HOSPITAL, PATIENT, "patient")
    signer, tx_type = (PATIENT, "identity.person.rotate") if kind == "person" else (HOSPITAL, "identity.org.rotate")
    make = person_rotation if kind == "person" else org_rotation
    victim, encryption = key("victim-pending-admission"), fresh_encryption_key()
    honest = make(signer, victim, encryption)
    forged = [
        dataclasses.replace(honest, proof=b""),
        dataclasses.replace(honest, proof=key("attacker").sign(SignatureDomain.KEY_ROTATION, CHAIN, b"x")),
        dataclasses.replace(honest, proof=make(key("someone-else"), victim).proof),  # a proof for another rotation
        dataclasses.replace(honest, proof=sign_rotation(victim, signer.public_key, "another-chain")),
    ]
    for body in forged:
        assert "did not sign this rotation" in ledger.refused(signer, tx_type, body, RejectReason.INVALID)
    ledger.ok(signer, tx_type, honest)


def test_a_person_rotates_their_keys_and_keeps_their_id(ledger: LedgerHarness) -> None:
    ledger.admit_organisation(HOSPITAL, "hospital")
    ledger.register_person(HOSPITAL, PATIENT, "patient")
    new_key, new_encryption = key("patient-2024"), fresh_encryption_key()
    ledger.ok(PATIENT, "identity.person.rotate", person_rotation(PATIENT, new_key, new_encryption))
    assert person_of(ledger.state, PATIENT.public_key) is None, "the old key speaks for nobody"
    rotated = person_of(ledger.state, new_key.public_key)
    assert rotated is not None and rotated.id == PATIENT.public_key and rotated.encryption_key == new_encryption
    back = person_rotation(new_key, PATIENT)
    assert "never reused" in ledger.refused(new_key, "identity.person.rotate", back, RejectReason.INVALID)
    stale = person_rotation(PATIENT, key("x"))
    assert "current key" in ledger.refused(PATIENT, "identity.person.rotate", stale, RejectReason.NOT_AUTHORISED)


def test_a_person_is_revoked_by_themself_or_their_organisation_or_the_validators_only(ledger: LedgerHarness) -> None:
    ledger.admit_organisation(HOSPITAL, "hospital")
    ledger.admit_organisation(LAB, "laboratory")
    ledger.register_person(HOSPITAL, PATIENT, "patient")
    ledger.register_person(HOSPITAL, CLINICIAN, "clinician")
    revoke = PersonRevoke(PATIENT.public_key)
    assert "only the person" in ledger.refused(LAB, "identity.person.revoke", revoke, RejectReason.NOT_AUTHORISED)
    assert "2f+1 vote of the validators" in ledger.refused(
        LAB, "identity.person.revoke", revoke, RejectReason.NOT_AUTHORISED
    )
    assert "only the person" in ledger.refused(CLINICIAN, "identity.person.revoke", revoke, RejectReason.NOT_AUTHORISED)
    ledger.ok(PATIENT, "identity.person.revoke", revoke)
    assert person_of(ledger.state, PATIENT.public_key) is None
    revoked = person(ledger.state, PATIENT.public_key)
    assert revoked is not None and not revoked.active
    assert "no person in force" in ledger.refused(HOSPITAL, "identity.person.revoke", revoke, RejectReason.INVALID)
    ledger.ok(HOSPITAL, "identity.person.revoke", PersonRevoke(CLINICIAN.public_key))
    assert person_of(ledger.state, CLINICIAN.public_key) is None


def test_the_validators_revoke_any_person_by_a_quorum_vote(ledger: LedgerHarness) -> None:
    ledger.admit_organisation(HOSPITAL, "hospital")
    ledger.register_person(HOSPITAL, CLINICIAN, "clinician")
    revoke = PersonRevoke(CLINICIAN.public_key)
    quorum = ledger.validators[:3]  # 2f+1 of 4; none of them registered the clinician
    for voter in quorum[:-1]:
        ledger.ok(voter, "identity.person.revoke", revoke)
        assert person_of(ledger.state, CLINICIAN.public_key) is not None, "fewer than 2f+1 votes change nothing"
    ledger.ok(quorum[-1], "identity.person.revoke", revoke)
    assert person_of(ledger.state, CLINICIAN.public_key) is None


def test_the_genesis_sites_are_in_force_from_a_new_store_on(tmp_path: Path) -> None:
    genesis = load_genesis(create_testnet(tmp_path / "net", 4, 30_000, "c")[0] / GENESIS)
    path = tmp_path / "chain.sqlite3"
    with Store.open(path, genesis.chain_id, genesis.hash, genesis_state(genesis.organisations)) as store:
        for validator in genesis.validators:
            site = organisation_of(store, validator.public_key)
            assert site is not None and (site.profile.name, site.kind, site.since_height) == (
                validator.moniker,
                validator.kind,
                0,
            )
            assert site.profile.encryption_key == validator.encryption_key
    with Store.open(path, genesis.chain_id, genesis.hash) as reopened:  # state comes from the store, not the call
        assert organisation_of(reopened, genesis.validators[0].public_key) is not None
