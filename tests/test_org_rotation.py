"""Organisation key rotation: an organisation keeps its id (the key it was admitted with)
while its keys change, by its own ``identity.org.rotate`` or by a 2f+1 vote of the
validators when its key was stolen; the old key counts for nothing from then on, and
everything that names the organisation still means it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from health_world import GTIN, MAKER, InProcessClient
from ledger_harness import LedgerHarness, glass, key, org_rotation
from p2pmed.cli.main import cli
from p2pmed.crypto import (
    EncryptionPrivateKey,
    EncryptionPublicKey,
    encrypt_record,
    save_signing_key,
)
from p2pmed.key_shares import share_digest, split, wrap_share
from p2pmed.ledger.contracts.audit import audit_trail
from p2pmed.ledger.contracts.consent import ConsentGrant
from p2pmed.ledger.contracts.identity import (
    OrganisationProfile,
    OrgProposal,
    OrgRevoke,
    OrgRotate,
    PersonRegister,
    PersonRevoke,
    organisation,
    organisation_by_id_or_key,
    organisation_in_force,
    organisation_of,
    person_of,
)
from p2pmed.ledger.contracts.records import BreakGlassReview, RecordAdd, RecordRead, read_grant
from p2pmed.ledger.contracts.supply import PackRef, SupplyCommission, SupplyReceive, SupplyShip, SupplyVerify, trace
from p2pmed.ledger.contracts.trials import Protocol, TrialAmend, TrialRegister, trial
from p2pmed.ledger.errors import RejectReason
from p2pmed.node.custodian import Custodian
from p2pmed.store.blobs import BlobStore

HOSPITAL, HOSPITAL_NEXT, THIEF = key("hospital"), key("hospital-2027"), key("thief")
LAB = key("lab")
PATIENT, DOCTOR, STRANGER = key("patient"), key("doctor"), key("stranger")
H = HOSPITAL.public_key  # the hospital's id, for life
YEAR_MS = 365 * 86_400_000


def fresh_encryption_key() -> EncryptionPublicKey:
    return EncryptionPrivateKey.generate().public_key


@pytest.fixture
def ledger() -> LedgerHarness:
    """A hospital with a patient and a clinician, registered before any rotation."""
    harness = LedgerHarness(validators=4)  # f = 1: 3 votes decide
    harness.admit_organisation(HOSPITAL, "hospital")
    harness.admit_organisation(LAB, "laboratory")
    harness.register_person(HOSPITAL, PATIENT, "patient")
    harness.register_person(HOSPITAL, DOCTOR, "clinician")
    return harness


def anchor(ledger: LedgerHarness, name: str) -> RecordAdd:
    return ledger.anchor(hashlib.sha256(name.encode() + b"-id").digest(), PATIENT.public_key)


def test_an_organisation_rotates_its_keys_and_keeps_its_id(ledger: LedgerHarness) -> None:
    new_encryption = fresh_encryption_key()
    ledger.ok(HOSPITAL, "identity.org.rotate", org_rotation(HOSPITAL, HOSPITAL_NEXT, new_encryption))
    assert organisation_of(ledger.state, H) is None, "the old key speaks for nobody"
    rotated = organisation_of(ledger.state, HOSPITAL_NEXT.public_key)
    assert rotated is not None and rotated.id == H and rotated.profile.encryption_key == new_encryption
    assert organisation_in_force(ledger.state, H) == rotated == organisation_by_id_or_key(ledger.state, H)
    assert organisation_by_id_or_key(ledger.state, HOSPITAL_NEXT.public_key) == rotated
    register = PersonRegister(key("new-nurse").public_key, "clinician", fresh_encryption_key())
    assert "organisation in force" in ledger.refused(
        HOSPITAL, "identity.person.register", register, RejectReason.NOT_AUTHORISED
    )
    ledger.ok(HOSPITAL_NEXT, "identity.person.register", register)
    nurse = person_of(ledger.state, key("new-nurse").public_key)
    assert nurse is not None and nurse.organisation == H, "people are registered under the id, not the key"
    assert "current key" in ledger.refused(
        HOSPITAL, "identity.org.rotate", org_rotation(HOSPITAL, key("again")), RejectReason.NOT_AUTHORISED
    )


def test_an_organisation_never_rotates_to_a_key_used_before(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "identity.org.rotate", org_rotation(HOSPITAL, HOSPITAL_NEXT))
    used = [
        H,  # its own former key, which is also its id
        HOSPITAL_NEXT.public_key,  # its current key
        LAB.public_key,  # another organisation's
        PATIENT.public_key,  # a person's
        ledger.validators[1].public_key,  # a validator's
    ]
    for taken in used:
        body = OrgRotate(taken, fresh_encryption_key(), b"")  # refused before its proof is looked at
        assert "never reused" in ledger.refused(HOSPITAL_NEXT, "identity.org.rotate", body, RejectReason.INVALID)
    as_person = PersonRegister(H, "patient", fresh_encryption_key())
    assert "never reused" in ledger.refused(HOSPITAL_NEXT, "identity.person.register", as_person, RejectReason.INVALID)
    as_organisation = OrgProposal(OrganisationProfile(H, "again", "clinic", fresh_encryption_key()))
    assert "already in force" in ledger.refused(
        ledger.validators[0], "identity.org.propose", as_organisation, RejectReason.INVALID
    )
    stale = OrgProposal(OrganisationProfile(HOSPITAL_NEXT.public_key, "again", "clinic", fresh_encryption_key()))
    assert "never reused" in ledger.refused(ledger.validators[0], "identity.org.propose", stale, RejectReason.INVALID)


def test_only_the_organisation_itself_rotates_its_keys(ledger: LedgerHarness) -> None:
    for outsider in (STRANGER, DOCTOR, PATIENT):
        assert "current key of an organisation in force" in ledger.refused(
            outsider, "identity.org.rotate", org_rotation(outsider, THIEF), RejectReason.NOT_AUTHORISED
        )
    # A validator's rotation names no target: it rotates the validator's own site, never another.
    ledger.ok(ledger.validators[0], "identity.org.rotate", org_rotation(ledger.validators[0], key("site-0-2027")))
    hospital = organisation_in_force(ledger.state, H)
    assert hospital is not None and hospital.profile.key == H
    for validator in ledger.validators[:3]:
        ledger.ok(validator, "identity.org.revoke", OrgRevoke(H))
    assert "current key of an organisation in force" in ledger.refused(
        HOSPITAL, "identity.org.rotate", org_rotation(HOSPITAL, THIEF), RejectReason.NOT_AUTHORISED
    ), "a revoked organisation rotates nothing"


def test_people_and_consents_to_the_organisation_survive_its_rotation(ledger: LedgerHarness) -> None:
    grant = ConsentGrant(PATIENT.public_key, H, ("laboratory",), ("TREAT",), ledger.time_ms + YEAR_MS)
    ledger.ok(PATIENT, "consent.grant", grant)
    ledger.ok(HOSPITAL, "identity.org.rotate", org_rotation(HOSPITAL, HOSPITAL_NEXT))
    doctor = person_of(ledger.state, DOCTOR.public_key)
    assert doctor is not None and doctor.organisation == H, "a clinician registered before stays in force"
    first, second = anchor(ledger, "first"), anchor(ledger, "second")
    assert "person or an organisation in force" in ledger.refused(
        HOSPITAL, "record.add", first, RejectReason.NOT_AUTHORISED
    )
    ledger.ok(HOSPITAL_NEXT, "record.add", first)  # the patient is registered at the hospital: care relationship
    ledger.ok(DOCTOR, "record.add", second)
    assert "neither a person nor an organisation in force" in ledger.refused(
        HOSPITAL, "record.read", RecordRead(first.record_id, "TREAT", False), RejectReason.NOT_AUTHORISED
    )
    ledger.ok(HOSPITAL_NEXT, "record.read", RecordRead(first.record_id, "TREAT", False))
    ledger.ok(DOCTOR, "record.read", RecordRead(second.record_id, "TREAT", False))
    by_doctor = read_grant(ledger.state, second.record_id, DOCTOR.public_key, ledger.time_ms)
    assert by_doctor is not None and by_doctor.basis == "organisation-consent", "the consent to the id still covers"
    by_hospital = read_grant(ledger.state, first.record_id, H, ledger.time_ms)
    assert by_hospital is not None and by_hospital.basis == "consent"
    by_hospital_trail = [
        entry.kind for entry in audit_trail(ledger.state, "patient", PATIENT.public_key) if entry.actor == H
    ]
    assert by_hospital_trail == ["record-write", "record-read-refused", "record-read"], "the trail names the id"
    assert list(audit_trail(ledger.state, "actor", HOSPITAL_NEXT.public_key)) == []
    for validator in ledger.validators[:3]:
        ledger.ok(validator, "identity.org.revoke", OrgRevoke(H))
    assert person_of(ledger.state, DOCTOR.public_key) is None, "revoking by id still cascades to staff"


def test_break_glass_is_reviewed_by_the_organisation_under_its_new_key(ledger: LedgerHarness) -> None:
    written = anchor(ledger, "scan")
    ledger.ok(HOSPITAL, "record.add", written)
    broke = ledger.run(DOCTOR, "record.read", glass(written.record_id))
    assert broke.ok, broke.detail
    ledger.ok(HOSPITAL, "identity.org.rotate", org_rotation(HOSPITAL, HOSPITAL_NEXT))
    review = BreakGlassReview(broke.tx_id, "justified")
    assert "clinician's organisation" in ledger.refused(HOSPITAL, "record.review", review, RejectReason.NOT_AUTHORISED)
    ledger.ok(HOSPITAL_NEXT, "record.review", review)
    assert audit_trail(ledger.state, "patient", PATIENT.public_key)[-1].actor == H


def test_supply_custody_and_trial_sponsorship_follow_the_id(ledger: LedgerHarness) -> None:
    maker, maker_next = key("maker"), key("maker-2027")
    ledger.admit_organisation(maker, "manufacturer")
    ledger.grant_prefix(maker, "0614141")
    gtin, pack = "10614141073464", PackRef("10614141073464", "S1")
    ledger.ok(maker, "supply.commission", SupplyCommission(gtin, "L1", "2031-12-31", ("S1", "S2")))
    ledger.ok(maker, "identity.org.rotate", org_rotation(maker, maker_next))
    ledger.ok(HOSPITAL, "identity.org.rotate", org_rotation(HOSPITAL, HOSPITAL_NEXT))
    more = SupplyCommission(gtin, "L1", "2031-12-31", ("S3",))
    assert "organisation in force" in ledger.refused(maker, "supply.commission", more, RejectReason.NOT_AUTHORISED)
    ledger.ok(maker_next, "supply.commission", more)  # still the GTIN's owner
    assert "organisation in force" in ledger.refused(
        maker, "supply.ship", SupplyShip(H, (pack,)), RejectReason.NOT_AUTHORISED
    )
    shipped = ledger.run(maker_next, "supply.ship", SupplyShip(H, (pack,)))  # packs held since before the rotation
    assert shipped.ok, shipped.detail
    assert "organisation in force" in ledger.refused(
        HOSPITAL, "supply.receive", SupplyReceive(shipped.tx_id, (pack,), ()), RejectReason.NOT_AUTHORISED
    )
    ledger.ok(HOSPITAL_NEXT, "supply.receive", SupplyReceive(shipped.tx_id, (pack,), ()))
    ledger.ok(HOSPITAL_NEXT, "supply.verify", SupplyVerify(gtin, "S1", "L1", "2031-12-31"))
    events = trace(ledger.state, gtin, "S1")
    assert [(event.kind, event.organisation) for event in events] == [
        ("commission", maker.public_key),
        ("ship", maker.public_key),
        ("receive", H),
        ("scan", H),
    ]
    assert events[-1].detail == "genuine-dispensable", "the scanner holds the pack: custody is continuous"

    sponsor = key("sponsor")
    ledger.admit_organisation(sponsor, "sponsor")
    planned = Protocol(hashlib.sha256(b"v1").digest(), ("mortality",), ("length of stay",), 100)
    ledger.ok(sponsor, "trial.register", TrialRegister("NCT00000001", planned))
    ledger.ok(sponsor, "identity.org.rotate", org_rotation(sponsor, key("sponsor-2027")))
    amended = TrialAmend("NCT00000001", Protocol(hashlib.sha256(b"v2").digest(), ("mortality",), (), 100))
    assert "only the sponsor" in ledger.refused(sponsor, "trial.amend", amended, RejectReason.NOT_AUTHORISED)
    ledger.ok(key("sponsor-2027"), "trial.amend", amended)
    registered = trial(ledger.state, "NCT00000001")
    assert registered is not None and registered.sponsor == sponsor.public_key


def test_the_validators_replace_a_stolen_key_by_a_quorum_vote(ledger: LedgerHarness) -> None:
    # The thief holds the hospital's key and rotates it to one of its own first.
    ledger.ok(HOSPITAL, "identity.org.rotate", org_rotation(HOSPITAL, THIEF))
    replacement = OrgProposal(
        OrganisationProfile(HOSPITAL_NEXT.public_key, "St Mary's", "hospital", fresh_encryption_key()), H
    )
    assert "validator" in ledger.refused(
        HOSPITAL_NEXT, "identity.org.propose", replacement, RejectReason.NOT_AUTHORISED
    )
    for validator in ledger.validators[:2]:
        ledger.ok(validator, "identity.org.propose", replacement)
        assert organisation_of(ledger.state, THIEF.public_key) is not None, "fewer than 2f+1 votes change nothing"
    ledger.ok(ledger.validators[2], "identity.org.propose", replacement)
    assert organisation_of(ledger.state, THIEF.public_key) is None, "the vote is on the id: the thief's key is out"
    restored = organisation_of(ledger.state, HOSPITAL_NEXT.public_key)
    assert restored is not None and (restored.id, restored.profile.name) == (H, "St Mary's")
    assert person_of(ledger.state, DOCTOR.public_key) is not None, "its people stay in force"
    ledger.ok(HOSPITAL_NEXT, "identity.person.revoke", PersonRevoke(DOCTOR.public_key))
    register = PersonRegister(key("fake").public_key, "clinician", fresh_encryption_key())
    assert "organisation in force" in ledger.refused(
        THIEF, "identity.person.register", register, RejectReason.NOT_AUTHORISED
    )


def test_a_replacement_keeps_the_kind_needs_a_fresh_key_and_an_admitted_id(ledger: LedgerHarness) -> None:
    voter = ledger.validators[0]

    def proposal(new_key: bytes, kind: str = "hospital", of: bytes = H) -> OrgProposal:
        return OrgProposal(OrganisationProfile(new_key, "St Mary's", kind, fresh_encryption_key()), of)

    assert "keeps the organisation's kind (hospital)" in ledger.refused(
        voter, "identity.org.propose", proposal(HOSPITAL_NEXT.public_key, "distributor"), RejectReason.INVALID
    )
    assert "never reused" in ledger.refused(
        voter, "identity.org.propose", proposal(PATIENT.public_key), RejectReason.INVALID
    )
    assert "no organisation has this id" in ledger.refused(
        voter, "identity.org.propose", proposal(HOSPITAL_NEXT.public_key, of=STRANGER.public_key), RejectReason.INVALID
    )


def test_the_validators_reinstate_a_revoked_organisation_under_a_new_key(ledger: LedgerHarness) -> None:
    for validator in ledger.validators[:3]:
        ledger.ok(validator, "identity.org.revoke", OrgRevoke(H))
    assert person_of(ledger.state, DOCTOR.public_key) is None
    readmit = OrgProposal(OrganisationProfile(H, "St Mary's", "hospital", fresh_encryption_key()))
    assert "was revoked" in ledger.refused(ledger.validators[0], "identity.org.propose", readmit, RejectReason.INVALID)
    reinstate = OrgProposal(
        OrganisationProfile(HOSPITAL_NEXT.public_key, "St Mary's", "hospital", fresh_encryption_key()), H
    )
    for validator in ledger.validators[:3]:
        ledger.ok(validator, "identity.org.propose", reinstate)
    reinstated = organisation_of(ledger.state, HOSPITAL_NEXT.public_key)
    assert reinstated is not None and reinstated.id == H and organisation_of(ledger.state, H) is None
    assert person_of(ledger.state, DOCTOR.public_key) is not None, "its staff are in force with it again"


def test_a_revocation_names_the_id_not_the_current_key(ledger: LedgerHarness) -> None:
    ledger.ok(HOSPITAL, "identity.org.rotate", org_rotation(HOSPITAL, HOSPITAL_NEXT))
    assert "no organisation in force has this id" in ledger.refused(
        ledger.validators[0], "identity.org.revoke", OrgRevoke(HOSPITAL_NEXT.public_key), RejectReason.INVALID
    )
    for validator in ledger.validators[:3]:
        ledger.ok(validator, "identity.org.revoke", OrgRevoke(H))
    revoked = organisation(ledger.state, H)
    assert (
        revoked is not None and not revoked.active and organisation_of(ledger.state, HOSPITAL_NEXT.public_key) is None
    )


def test_a_genesis_site_moves_its_ledger_key_off_the_validator_key(ledger: LedgerHarness, tmp_path: Path) -> None:
    validator, site_next = ledger.validators[0], key("site-0-2027")
    record_id = os.urandom(32)
    data_key, sealed = encrypt_record(record_id, b'{"resourceType": "Observation"}')
    shares = split(data_key, 2, 3)
    written = ledger.anchor(
        record_id,
        PATIENT.public_key,
        ciphertext_sha256=hashlib.sha256(sealed).digest(),
        size=len(sealed),
        share_sha256=tuple(share_digest(record_id, index, share) for index, share in enumerate(shares, 1)),
    )
    ledger.ok(HOSPITAL, "record.add", written)
    ledger.ok(validator, "identity.org.rotate", org_rotation(validator, site_next))
    assert organisation_of(ledger.state, validator.public_key) is None
    site = organisation_of(ledger.state, site_next.public_key)
    assert site is not None and site.id == validator.public_key
    register = PersonRegister(key("porter").public_key, "patient", fresh_encryption_key())
    assert "organisation in force" in ledger.refused(
        validator, "identity.person.register", register, RejectReason.NOT_AUTHORISED
    )
    ledger.ok(site_next, "identity.person.register", register)
    # The validator key still governs: its vote counts towards admitting an organisation.
    clinic = key("clinic")
    profile = OrganisationProfile(clinic.public_key, "clinic", "clinic", fresh_encryption_key())
    for voter in ledger.validators[:3]:
        ledger.ok(voter, "identity.org.propose", OrgProposal(profile))
    assert organisation_of(ledger.state, clinic.public_key) is not None
    # And it still names the site as a custodian, keeping its share under its genesis encryption key.
    wraps = tuple(
        wrap_share(share, index, ledger.site_encryption_keys[index - 1].public_key, record_id)
        for index, share in enumerate(shares, 1)
    )

    def custodian(index: int) -> Custodian:
        return Custodian(
            ledger.state,
            lambda: ledger.time_ms,
            BlobStore(tmp_path / f"blobs{index}"),
            ledger.validators[index].public_key,
            ledger.site_encryption_keys[index],
            "test-chain",
        )

    keeper = custodian(1)
    keeper.accept(record_id, sealed, wraps)
    copy = keeper.copy(record_id, validator.public_key)
    rotated = custodian(0)
    rotated.accept(record_id, copy.sealed, copy.wraps)
    assert rotated.blobs.holds(record_id)


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args[:2], "--home", str(home), *args[2:]])


def test_the_cli_rotates_an_organisation_and_the_rpc_finds_it_by_id_or_current_key(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    old_file, maker_next = directory / "maker.pem", key("maker-2027")
    save_signing_key(old_file, MAKER)
    new_file, stranger_file = directory / "maker-2027.pem", directory / "x.pem"
    save_signing_key(new_file, maker_next)
    save_signing_key(stranger_file, key("x"))
    new_encryption = fresh_encryption_key().key.hex()
    rotated = run(
        *(home, "identity", "rotate-org", "--key", str(old_file), "--new-key", str(new_file)),
        *("--encryption-key", new_encryption, "--wait"),
    )
    assert rotated.exit_code == 0, rotated.output
    maker_id = MAKER.public_key.hex()
    for id_or_key in (maker_id, maker_next.public_key.hex()):
        shown = client.call("identity.organisation", key=id_or_key)
        assert (shown["id"], shown["key"], shown["encryption_key"]["key"]) == (
            maker_id,
            maker_next.public_key.hex(),
            new_encryption,
        )
    shown_by_cli = run(home, "identity", "org", maker_next.public_key.hex())
    assert f"id             {maker_id}" in shown_by_cli.output, shown_by_cli.output
    # The maker holds its packs under its id; asked by its current key, the node answers for the id.
    verdict = client.call("supply.verify", gtin=GTIN, serial="S1", organisation=maker_next.public_key.hex())
    assert verdict["status"] == "genuine-dispensable", verdict["message"]
    again = run(
        *(home, "identity", "rotate-org", "--key", str(old_file), "--new-key", str(stranger_file)),
        *("--encryption-key", new_encryption, "--wait"),
    )
    assert again.exit_code == 1 and "current key of an organisation in force" in again.output
