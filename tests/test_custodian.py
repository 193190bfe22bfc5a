"""A custodian's rules: what it accepts, whom it serves, what it erases; and the
property that a reader obtains plaintext exactly when the ledger says they may."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_harness import LedgerHarness, glass, key
from p2pmed.crypto import decrypt_record, encrypt_record, unwrap_key, wrap_key
from p2pmed.ledger.contracts.consent import ConsentGrant, ConsentRevoke
from p2pmed.ledger.contracts.records import RecordAdd, RecordErase, RecordRead
from p2pmed.net.blob_protocol import BlobRequest, BlobResponse
from p2pmed.node.custodian import Custodian, CustodyRefused
from p2pmed.node.repair import BlobRepair
from p2pmed.store.blobs import BlobStore

HOSPITAL = key("hospital")
PATIENT, DOCTOR, NURSE = key("patient"), key("doctor"), key("nurse")
P = PATIENT.public_key
PLAINTEXT = b'{"resourceType": "Observation", "code": "potassium", "value": 4.1}'


class Site:
    """A ledger, one custodian (validator 0) with its blob store, and a written record."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ledger = LedgerHarness()
        self.ledger.admit_organisation(HOSPITAL, "hospital")
        self.keys = {
            person: self.ledger.register_person(HOSPITAL, person, role)
            for person, role in ((PATIENT, "patient"), (DOCTOR, "clinician"), (NURSE, "clinician"))
        }
        self.custodians = [validator.public_key for validator in self.ledger.validators[:2]]
        self.asking_node = self.ledger.validators[3].public_key  # a person's requests come through any node
        self.custodian = self.custodian_at(0, directory / "blobs0")
        self.record_id = os.urandom(32)
        self.data_key, self.sealed = encrypt_record(self.record_id, PLAINTEXT)
        anchor = RecordAdd(
            self.record_id,
            P,
            "laboratory",
            hashlib.sha256(self.sealed).digest(),
            len(self.sealed),
            tuple(self.custodians),
        )
        self.ledger.ok(HOSPITAL, "record.add", anchor)

    def custodian_at(self, index: int, directory: Path) -> Custodian:
        return Custodian(
            self.ledger.state,
            lambda: self.ledger.time_ms,
            BlobStore(directory),
            self.ledger.validators[index].public_key,
            self.ledger.site_encryption_keys[index],
        )

    def wrap_for(self, index: int) -> bytes:
        return wrap_key(self.data_key, self.ledger.site_encryption_keys[index].public_key, self.record_id)

    def upload(self) -> bytes:
        wrap = self.wrap_for(0)  # HPKE wraps are randomised: each call gives new bytes
        self.custodian.accept(self.record_id, self.sealed, wrap)
        return wrap

    def read(self, reader: Any, purpose: str = "TREAT", break_glass: bool = False, reason: str = "") -> bool:
        request = glass(self.record_id, purpose, reason) if break_glass else RecordRead(self.record_id, purpose, False)
        return self.ledger.run(reader, "record.read", request).ok

    def open(self, reader: Any) -> bytes:
        """Fetch from the custodian and decrypt with the reader's own key."""
        served = self.custodian.serve(self.record_id, reader.public_key, self.asking_node)
        return decrypt_record(self.record_id, served.sealed, unwrap_key(served.wrap, self.keys[reader], self.record_id))


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def grant(site: Site, grantee: bytes, purpose: str = "TREAT") -> ConsentGrant:
    return ConsentGrant(P, grantee, ("laboratory",), purpose, site.ledger.time_ms + 86_400_000)


def test_a_custodian_accepts_the_anchored_ciphertext_with_a_wrap_for_itself(site: Site) -> None:
    wrap = site.upload()
    assert site.custodian.blobs.get(site.record_id) == (site.sealed, wrap)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda s: {"record_id": os.urandom(32)}, "no committed anchor"),
        (lambda s: {"sealed": s.sealed[:-1] + bytes([s.sealed[-1] ^ 1])}, "does not match the anchored"),
        (lambda s: {"wrap": s.wrap_for(1)}, "does not open with this site's encryption key"),
    ],
)
def test_a_custodian_refuses_what_does_not_match_the_ledger(site: Site, change: Any, fragment: str) -> None:
    upload = {"record_id": site.record_id, "sealed": site.sealed, "wrap": site.wrap_for(0), **change(site)}
    with pytest.raises(CustodyRefused, match=fragment):
        site.custodian.accept(**upload)
    assert site.custodian.blobs.record_ids() == []


def test_a_site_that_is_not_a_custodian_refuses_the_record(site: Site, tmp_path: Path) -> None:
    other = site.custodian_at(3, tmp_path / "blobs3")
    with pytest.raises(CustodyRefused, match="not a custodian"):
        other.accept(site.record_id, site.sealed, site.wrap_for(3))


def test_the_patient_and_a_consented_clinician_get_the_plaintext_after_a_committed_read(site: Site) -> None:
    site.upload()
    with pytest.raises(CustodyRefused, match=r"commit record\.read first"):
        site.open(PATIENT)
    assert site.read(PATIENT, purpose="PATRQT") and site.open(PATIENT) == PLAINTEXT
    site.ledger.ok(PATIENT, "consent.grant", grant(site, DOCTOR.public_key))
    assert site.read(DOCTOR) and site.open(DOCTOR) == PLAINTEXT


def test_a_revoke_ends_access_within_the_grant_and_expiry_ends_the_grant(site: Site) -> None:
    site.upload()
    site.ledger.ok(PATIENT, "consent.grant", grant(site, DOCTOR.public_key))
    assert site.read(DOCTOR)
    site.ledger.ok(PATIENT, "consent.revoke", ConsentRevoke(P, DOCTOR.public_key, ("laboratory",)))
    with pytest.raises(CustodyRefused, match="access ended"):
        site.open(DOCTOR)
    assert site.read(PATIENT, purpose="PATRQT")
    site.ledger.time_ms += 10 * 60 * 1000
    with pytest.raises(CustodyRefused, match="last 10 minutes"):
        site.open(PATIENT)


def test_break_glass_is_served_without_consent(site: Site) -> None:
    site.upload()
    assert site.read(NURSE, purpose="ETREAT", break_glass=True, reason="anaphylaxis, needs history")
    assert site.open(NURSE) == PLAINTEXT


def test_another_custodian_is_served_a_wrap_for_itself_and_strangers_nothing(site: Site, tmp_path: Path) -> None:
    site.upload()
    served = site.custodian.serve(site.record_id, site.custodians[1], site.custodians[1])
    assert unwrap_key(served.wrap, site.ledger.site_encryption_keys[1], site.record_id) == site.data_key
    site.custodian_at(1, tmp_path / "blobs1").accept(site.record_id, served.sealed, served.wrap)
    with pytest.raises(CustodyRefused, match=r"commit record\.read first"):
        site.custodian.serve(site.record_id, key("stranger").public_key, site.asking_node)
    with pytest.raises(CustodyRefused, match="only when that custodian's own node asks"):
        site.custodian.serve(site.record_id, site.custodians[1], site.asking_node)  # naming it is not enough


def test_erasure_shreds_the_blob_and_refuses_every_later_request(site: Site) -> None:
    site.upload()
    assert site.read(PATIENT, purpose="PATRQT")
    site.ledger.ok(PATIENT, "record.erase", RecordErase(site.record_id))
    assert site.custodian.erase(site.record_id) and site.custodian.blobs.record_ids() == []
    for request in (lambda: site.open(PATIENT), lambda: site.upload()):
        with pytest.raises(CustodyRefused, match="erased"):
            request()


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.sampled_from(["TREAT", "HPAYMT"]), st.integers(1, 6)),
        st.tuples(st.just("revoke")),
        st.tuples(st.just("wait"), st.integers(1, 5)),
        st.tuples(st.just("read"), st.sampled_from(["TREAT", "HPAYMT"])),
        st.tuples(st.just("fetch")),
    ),
    max_size=20,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ACTIONS)
def test_a_reader_obtains_plaintext_exactly_when_the_ledger_says_they_may(
    tmp_path: Path, actions: list[tuple[Any, ...]]
) -> None:
    site = Site(tmp_path / os.urandom(4).hex())
    site.upload()
    consents: dict[str, int] = {}  # purpose -> expiry of the doctor's laboratory consents
    granted: tuple[str, int] | None = None  # (purpose, expiry) of the doctor's last passing read
    for action in actions:
        now = site.ledger.time_ms
        if action[0] == "grant":
            expires = now + 1_000 + action[2] * 1_000
            site.ledger.ok(
                PATIENT, "consent.grant", ConsentGrant(P, DOCTOR.public_key, ("laboratory",), action[1], expires)
            )
            consents[action[1]] = expires
        elif action[0] == "revoke":
            assert site.ledger.run(
                PATIENT, "consent.revoke", ConsentRevoke(P, DOCTOR.public_key, ("laboratory",))
            ).ok == bool(consents)
            consents = {}
        elif action[0] == "wait":
            site.ledger.time_ms += action[1] * 1_000
        elif action[0] == "read":
            allowed = consents.get(action[1], 0) > now + 1_000
            assert site.read(DOCTOR, purpose=action[1]) == allowed
            if allowed:
                granted = (action[1], now + 1_000 + 10 * 60 * 1000)
        else:
            may = granted is not None and granted[1] > now and consents.get(granted[0], 0) > now
            try:
                plaintext = site.open(DOCTOR)
            except CustodyRefused:
                plaintext = None
            assert (plaintext == PLAINTEXT) == may and plaintext in (None, PLAINTEXT), (action, consents, granted, now)


def test_a_custodian_that_missed_the_upload_fetches_its_copy_from_another(site: Site, tmp_path: Path) -> None:
    site.upload()  # custodian 0 has it; custodian 1 was down when the writer stored it
    late = site.custodian_at(1, tmp_path / "blobs1")
    asked: list[bytes] = []

    async def ask(custodian: bytes, request: BlobRequest) -> BlobResponse:
        asked.append(custodian)
        try:
            served = site.custodian.serve(request.record_id, request.reader, site.custodians[1])
        except CustodyRefused as refused:
            return BlobResponse(str(refused), b"", b"")
        return BlobResponse("", served.sealed, served.wrap)

    repair = BlobRepair(late, ask)
    repair.scan(site.ledger.state)
    assert list(repair.missing) == [site.record_id]
    trio.run(repair._repair, site.record_id)
    assert asked == [site.custodians[0]] and late.blobs.holds(site.record_id) and repair.missing == {}
    for keeper in (site.custodian, site.custodian_at(3, tmp_path / "blobs3")):  # holds it already / not named
        idle = BlobRepair(keeper, ask)
        idle.scan(site.ledger.state)
        assert idle.missing == {}


def test_a_held_copy_is_never_replaced_and_a_wrap_must_open_to_the_key_that_decrypts(site: Site) -> None:
    good_wrap = site.upload()
    own_key = site.ledger.site_encryption_keys[0].public_key
    swapped = wrap_key(os.urandom(32), own_key, site.record_id)  # opens here, but to a key of the attacker's
    site.custodian.accept(site.record_id, site.sealed, swapped)  # accepted as "already held", changing nothing
    assert site.custodian.blobs.get(site.record_id) == (site.sealed, good_wrap)
    assert site.read(PATIENT, purpose="PATRQT") and site.open(PATIENT) == PLAINTEXT

    fresh = Site(site.directory / "fresh")
    with pytest.raises(CustodyRefused, match="does not decrypt the ciphertext"):
        fresh_key = fresh.ledger.site_encryption_keys[0].public_key
        fresh.custodian.accept(fresh.record_id, fresh.sealed, wrap_key(os.urandom(32), fresh_key, fresh.record_id))
    assert not fresh.custodian.blobs.holds(fresh.record_id)


def test_a_copy_the_ledger_erased_while_the_node_was_down_is_shredded_at_start(site: Site) -> None:
    site.upload()
    site.ledger.ok(PATIENT, "record.erase", RecordErase(site.record_id))  # committed; the listener never ran
    assert site.custodian.blobs.holds(site.record_id)

    async def never(custodian: bytes, request: BlobRequest) -> BlobResponse:
        raise AssertionError("nothing to fetch")

    repair = BlobRepair(site.custodian, never)
    repair.scan(site.ledger.state)
    assert not site.custodian.blobs.holds(site.record_id) and repair.missing == {}
