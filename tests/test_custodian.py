"""A custodian's rules: what it accepts, whom it serves, what it erases; that no single
custodian can open a record; and the property that a reader obtains plaintext exactly
when the ledger says they may."""

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
from p2pmed import codec
from p2pmed.crypto import CryptoError, SignatureDomain, SigningKey, decrypt_record, encrypt_record
from p2pmed.key_shares import combine, share_digest, split, unwrap_share, wrap_share
from p2pmed.ledger.contracts.consent import ConsentGrant, ConsentRevoke
from p2pmed.ledger.contracts.records import RecordErase, RecordRead
from p2pmed.net.blob_protocol import BlobRequest, BlobResponse, ReadRequest, SealedShares, SignedReadRequest
from p2pmed.node.custodian import READ_REQUEST_SKEW_MS, Custodian, CustodyRefused
from p2pmed.node.repair import BlobRepair
from p2pmed.node.site_audit import LOG_FILE, SiteAudit, fhir_event
from p2pmed.store.audit_log import SignedLog, read_entries, verify_log
from p2pmed.store.blobs import BlobStore

HOSPITAL = key("hospital")
PATIENT, DOCTOR, NURSE = key("patient"), key("doctor"), key("nurse")
P = PATIENT.public_key
PLAINTEXT = b'{"resourceType": "Observation", "code": "potassium", "value": 4.1}'
CHAIN = "test-chain"


class Site:
    """A ledger of 4 validators, the record's three custodians (validators 0-2, any two of
    whose shares open it) each with its blob store, and a written record."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ledger = LedgerHarness()
        self.ledger.admit_organisation(HOSPITAL, "hospital")
        self.keys = {
            person: self.ledger.register_person(HOSPITAL, person, role)
            for person, role in ((PATIENT, "patient"), (DOCTOR, "clinician"), (NURSE, "clinician"))
        }
        self.record_id = os.urandom(32)
        self.data_key, self.sealed = encrypt_record(self.record_id, PLAINTEXT)
        self.shares = split(self.data_key, 2, 3)
        anchor = self.ledger.anchor(
            self.record_id,
            P,
            ciphertext_sha256=hashlib.sha256(self.sealed).digest(),
            size=len(self.sealed),
            share_sha256=tuple(share_digest(self.record_id, i, share) for i, share in enumerate(self.shares, 1)),
        )
        self.custodians = list(anchor.custodians)
        self.ledger.ok(HOSPITAL, "record.add", anchor)
        self.sites = [self.custodian_at(index, directory / f"blobs{index}") for index in range(3)]
        self.custodian = self.sites[0]

    def custodian_at(self, index: int, directory: Path) -> Custodian:
        return Custodian(
            self.ledger.state,
            lambda: self.ledger.time_ms,
            BlobStore(directory),
            self.ledger.validators[index].public_key,
            self.ledger.site_encryption_keys[index],
            CHAIN,
        )

    def wraps(self) -> tuple[bytes, ...]:
        """Each share sealed to its custodian (HPKE is randomised: each call gives new bytes)."""
        return tuple(
            wrap_share(share, index, self.ledger.site_encryption_keys[index - 1].public_key, self.record_id)
            for index, share in enumerate(self.shares, 1)
        )

    def upload(self, to: tuple[int, ...] = (0, 1, 2)) -> tuple[bytes, ...]:
        wraps = self.wraps()
        for index in to:
            self.sites[index].accept(self.record_id, self.sealed, wraps)
        return wraps

    def read(self, reader: Any, purpose: str = "TREAT", break_glass: bool = False, reason: str = "") -> bool:
        request = glass(self.record_id, purpose, reason) if break_glass else RecordRead(self.record_id, purpose, False)
        return self.ledger.run(reader, "record.read", request).ok

    def request(self, reader: SigningKey) -> SignedReadRequest:
        request = ReadRequest(self.record_id, reader.public_key, self.ledger.time_ms)
        return SignedReadRequest(request, reader.sign(SignatureDomain.RECORD_FETCH, CHAIN, codec.encode(request)))

    def open(self, reader: Any, using: tuple[int, ...] = (0, 1)) -> bytes:
        """Fetch the ciphertext and shares from the custodians ``using``, check and combine, decrypt."""
        read = self.request(reader)
        sealed = self.sites[using[0]].serve("sealed", self.record_id, read).sealed
        shares = {}
        for index in using:
            wrap = self.sites[index].serve("share", self.record_id, read).wraps[0]
            number, share = unwrap_share(wrap, self.keys[reader], self.record_id)
            shares[number] = share
        return decrypt_record(self.record_id, sealed, combine(shares))


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def grant(site: Site, grantee: bytes, purpose: str = "TREAT") -> ConsentGrant:
    return ConsentGrant(P, grantee, ("laboratory",), (purpose,), site.ledger.time_ms + 86_400_000)


def test_each_custodian_keeps_the_ciphertext_and_every_sealed_share(site: Site) -> None:
    wraps = site.upload()
    for custodian in site.sites:
        assert custodian.blobs.get(site.record_id) == (site.sealed, codec.encode(SealedShares(wraps)))


def test_no_single_custodian_can_open_the_record_with_its_keys(site: Site) -> None:
    """Everything custodian 0 holds or can open: the ciphertext, its own share, and the other
    shares sealed to other custodians, which do not open with its key."""
    wraps = site.upload()
    own_key = site.ledger.site_encryption_keys[0]
    index, share = unwrap_share(wraps[0], own_key, site.record_id)
    for other in wraps[1:]:
        with pytest.raises(CryptoError):
            unwrap_share(other, own_key, site.record_id)
    for candidate in (share, combine({index: share})):
        with pytest.raises(CryptoError):
            decrypt_record(site.record_id, site.sealed, candidate)
    assert combine({index: share, 2: site.shares[1]}) == site.data_key  # a second share is what it lacks


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda s: {"record_id": os.urandom(32)}, "no committed anchor"),
        (lambda s: {"sealed": s.sealed[:-1] + bytes([s.sealed[-1] ^ 1])}, "does not match the anchored"),
        (lambda s: {"wraps": s.wraps()[1:]}, "one sealed key share per custodian"),
        (lambda s: {"wraps": (s.wraps()[1], *s.wraps()[1:])}, "does not open with its encryption key"),
        (lambda s: {"wraps": (b"\0" * 5000, *s.wraps()[1:])}, "each at most"),
    ],
)
def test_a_custodian_refuses_what_does_not_match_the_ledger(site: Site, change: Any, fragment: str) -> None:
    upload = {"record_id": site.record_id, "sealed": site.sealed, "wraps": site.wraps(), **change(site)}
    with pytest.raises(CustodyRefused, match=fragment):
        site.custodian.accept(**upload)
    assert site.custodian.blobs.record_ids() == []


def test_a_share_that_opens_but_is_not_the_anchored_one_is_refused(site: Site) -> None:
    """A writer (or anyone) handing a custodian a share of another key, sealed to it: it opens,
    but its digest is not on the anchor."""
    own_key = site.ledger.site_encryption_keys[0].public_key
    for forged in (
        wrap_share(os.urandom(32), 1, own_key, site.record_id),
        wrap_share(site.shares[0], 2, own_key, site.record_id),
    ):
        with pytest.raises(CustodyRefused, match="does not match the anchor's digest"):
            site.custodian.accept(site.record_id, site.sealed, (forged, *site.wraps()[1:]))
    assert not site.custodian.blobs.holds(site.record_id)


def test_a_site_that_is_not_a_custodian_refuses_the_record(site: Site, tmp_path: Path) -> None:
    other = site.custodian_at(3, tmp_path / "blobs3")
    with pytest.raises(CustodyRefused, match="not a custodian"):
        other.accept(site.record_id, site.sealed, site.wraps())


def test_the_patient_and_a_consented_clinician_get_the_plaintext_after_a_committed_read(site: Site) -> None:
    site.upload()
    with pytest.raises(CustodyRefused, match=r"commit record\.read first"):
        site.open(PATIENT)
    assert site.read(PATIENT, purpose="PATRQT") and site.open(PATIENT) == PLAINTEXT
    site.ledger.ok(PATIENT, "consent.grant", grant(site, DOCTOR.public_key))
    assert site.read(DOCTOR) and site.open(DOCTOR) == PLAINTEXT


def test_an_authorised_reader_opens_the_record_with_any_one_custodian_down(site: Site) -> None:
    site.upload()
    assert site.read(PATIENT, purpose="PATRQT")
    for up in ((0, 1), (1, 2), (2, 0)):
        assert site.open(PATIENT, using=up) == PLAINTEXT


def test_a_read_request_must_be_signed_by_its_reader_and_fresh(site: Site) -> None:
    site.upload()
    site.ledger.ok(PATIENT, "consent.grant", grant(site, DOCTOR.public_key))
    assert site.read(DOCTOR)
    honest = site.request(DOCTOR)
    named = SignedReadRequest(
        honest.request, NURSE.sign(SignatureDomain.RECORD_FETCH, CHAIN, codec.encode(honest.request))
    )
    other_chain = SignedReadRequest(
        honest.request, DOCTOR.sign(SignatureDomain.RECORD_FETCH, "another-chain", codec.encode(honest.request))
    )
    for forged in (named, other_chain):
        with pytest.raises(CustodyRefused, match="not signed by the reader it names"):
            site.custodian.serve("share", site.record_id, forged)
    with pytest.raises(CustodyRefused, match="signed read request for that record"):
        site.custodian.serve("share", os.urandom(32), honest)
    with pytest.raises(CustodyRefused, match="signed read request for that record"):
        site.custodian.serve("share", site.record_id, None)
    for issued in (site.ledger.time_ms - READ_REQUEST_SKEW_MS - 1_001, site.ledger.time_ms + 10 * 60 * 1000 + 1):
        stale = ReadRequest(site.record_id, DOCTOR.public_key, issued)
        signed = SignedReadRequest(stale, DOCTOR.sign(SignatureDomain.RECORD_FETCH, CHAIN, codec.encode(stale)))
        with pytest.raises(CustodyRefused, match="not signed within its read grant"):
            site.custodian.serve("share", site.record_id, signed)
    assert site.custodian.serve("share", site.record_id, honest).wraps


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


def test_a_copy_goes_only_to_another_custodian_of_the_record(site: Site) -> None:
    wraps = site.upload(to=(0,))
    copy = site.custodian.copy(site.record_id, site.custodians[1])
    assert (copy.sealed, copy.wraps) == (site.sealed, wraps)
    for requester, fragment in (
        (site.custodians[0], "only to another custodian"),
        (site.ledger.validators[3].public_key, "only to another custodian"),
    ):
        with pytest.raises(CustodyRefused, match=fragment):
            site.custodian.copy(site.record_id, requester)
    assert site.custodian.answer(BlobRequest("copy", site.record_id), site.ledger.validators[3].public_key).error


def test_erasure_shreds_the_blob_and_refuses_every_later_request(site: Site) -> None:
    site.upload()
    assert site.read(PATIENT, purpose="PATRQT")
    site.ledger.ok(PATIENT, "record.erase", RecordErase(site.record_id))
    assert site.custodian.erase(site.record_id) and site.custodian.blobs.record_ids() == []
    for request in (lambda: site.open(PATIENT), lambda: site.upload()):
        with pytest.raises(CustodyRefused, match="erased"):
            request()


def test_unknown_request_kinds_are_answered_with_an_error(site: Site) -> None:
    response = site.custodian.answer(BlobRequest("get", site.record_id), site.custodians[1])
    assert "unknown request kind 'get'" in response.error


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
                PATIENT, "consent.grant", ConsentGrant(P, DOCTOR.public_key, ("laboratory",), (action[1],), expires)
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
    site.upload(to=(0,))  # custodians 1 and 2 were down when the writer stored it
    late = site.sites[1]
    asked: list[bytes] = []

    async def ask(custodian: bytes, request: BlobRequest) -> BlobResponse:
        asked.append(custodian)
        return site.sites[site.custodians.index(custodian)].answer(request, late.site_key)

    repair = BlobRepair(late, ask)
    repair.scan(site.ledger.state)
    assert list(repair.missing) == [site.record_id]
    trio.run(repair._repair, site.record_id)
    assert asked == [site.custodians[0]] and late.blobs.holds(site.record_id) and repair.missing == {}
    assert site.read(PATIENT, purpose="PATRQT") and site.open(PATIENT, using=(1, 0)) == PLAINTEXT
    for keeper in (site.custodian, site.custodian_at(3, tmp_path / "blobs3")):  # holds it already / not named
        idle = BlobRepair(keeper, ask)
        idle.scan(site.ledger.state)
        assert idle.missing == {}


def test_a_held_copy_is_never_replaced(site: Site) -> None:
    good = site.upload()
    own_key = site.ledger.site_encryption_keys[0].public_key
    swapped = (wrap_share(os.urandom(32), 1, own_key, site.record_id), *good[1:])  # opens here, to the attacker's share
    site.custodian.accept(site.record_id, site.sealed, swapped)  # accepted as "already held", changing nothing
    assert site.custodian.blobs.get(site.record_id) == (site.sealed, codec.encode(SealedShares(good)))
    assert site.read(PATIENT, purpose="PATRQT") and site.open(PATIENT) == PLAINTEXT


def test_a_copy_the_ledger_erased_while_the_node_was_down_is_shredded_at_start(site: Site) -> None:
    site.upload()
    site.ledger.ok(PATIENT, "record.erase", RecordErase(site.record_id))  # committed; the listener never ran
    assert site.custodian.blobs.holds(site.record_id)

    async def never(custodian: bytes, request: BlobRequest) -> BlobResponse:
        raise AssertionError("nothing to fetch")

    repair = BlobRepair(site.custodian, never)
    repair.scan(site.ledger.state)
    assert not site.custodian.blobs.holds(site.record_id) and repair.missing == {}


# -- the site audit log: what the custodian refused, and to whom ---------------------------------


class WallClock:
    """The node's wall clock, moved by hand."""

    def __init__(self) -> None:
        self.ms = 1_800_000_000_000

    def __call__(self) -> int:
        return self.ms


def audited(site: Site, directory: Path, **budget: Any) -> tuple[SiteAudit, WallClock]:
    clock = WallClock()
    log = SignedLog(directory / LOG_FILE, site.ledger.validators[0], CHAIN, clock)
    audit = SiteAudit(log, clock, CHAIN, **budget)
    site.custodian.on_refused = audit.custody_refused
    return audit, clock


def logged(audit: SiteAudit) -> list[tuple[str, dict[str, Any]]]:
    return [(entry.kind, entry.fields) for _, entry in read_entries(audit.log.path)]


PEER = key("validator 2").public_key


def test_a_refused_share_is_logged_with_the_signed_request_it_came_with(site: Site, tmp_path: Path) -> None:
    audit, _ = audited(site, tmp_path)
    site.upload()
    forged = SignedReadRequest(site.request(DOCTOR).request, bytes(64))
    for read in (site.request(DOCTOR), forged):  # no record.read by the doctor on the ledger
        assert site.custodian.answer(BlobRequest("share", site.record_id, read=read), PEER).error
    (kind, honest), (_, forgery) = logged(audit)
    assert kind == "custody-refused"
    assert honest == {
        "request": "share",
        "requester": PEER.hex(),
        "record_id": site.record_id.hex(),
        "reader": DOCTOR.public_key.hex(),
        "signed_record_id": site.record_id.hex(),
        "issued_ms": site.ledger.time_ms,
        "signature_verified": True,
        "reason": honest["reason"],
    }
    assert "no read of this record by this reader" in str(honest["reason"])
    assert forgery["signature_verified"] is False and "not signed by the reader" in str(forgery["reason"])
    assert verify_log(audit.log.path, site.ledger.validators[0].public_key, CHAIN).ok


def test_refused_sealed_and_copy_requests_are_logged_and_puts_only_counted(site: Site, tmp_path: Path) -> None:
    audit, _ = audited(site, tmp_path)
    site.upload((1,))
    site.custodian.answer(BlobRequest("sealed", site.record_id), PEER)
    site.custodian.answer(BlobRequest("copy", site.record_id), PEER)  # custodian 0 holds nothing yet
    site.custodian.answer(BlobRequest("put", site.record_id, site.sealed[:-1], site.wraps()), PEER)
    entries = logged(audit)
    assert [(fields["request"], fields["reader"], fields["signature_verified"]) for _, fields in entries] == [
        ("sealed", None, None),
        ("copy", None, None),
    ]
    assert audit.refused == {"sealed": 1, "copy": 1, "put": 1}


def test_what_the_custodian_serves_is_not_logged(site: Site, tmp_path: Path) -> None:
    audit, _ = audited(site, tmp_path)
    site.upload()
    assert site.read(PATIENT, purpose="PATRQT") and site.open(PATIENT) == PLAINTEXT
    assert logged(audit) == [] and not audit.refused


def test_a_requester_over_its_budget_is_counted_then_summarised_when_logging_resumes(
    site: Site, tmp_path: Path
) -> None:
    audit, clock = audited(site, tmp_path, entries_per_s=0.5, entries_burst=3)
    request = BlobRequest("share", site.record_id, read=site.request(DOCTOR))
    for _ in range(100):  # a validator's node hammering, each refused: only the burst is written
        site.custodian.answer(request, PEER)
    site.custodian.answer(request, HOSPITAL.public_key)  # another requester has a budget of its own
    assert [fields["requester"] for _, fields in logged(audit)] == [PEER.hex()] * 3 + [HOSPITAL.public_key.hex()]
    assert audit.refused["share"] == 101

    clock.ms += 2_000  # one more entry's worth
    site.custodian.answer(request, PEER)
    *_, (kind, summary), (last, _) = logged(audit)
    assert (kind, last) == ("suppressed", "custody-refused")
    assert summary == {"requester": PEER.hex(), "count": 97, "first_ms": clock.ms - 2_000, "last_ms": clock.ms - 2_000}
    assert verify_log(audit.log.path, site.ledger.validators[0].public_key, CHAIN).ok


def test_a_stop_writes_the_summaries_still_owed(site: Site, tmp_path: Path) -> None:
    audit, _ = audited(site, tmp_path, entries_per_s=0.5, entries_burst=1)
    for _ in range(5):
        site.custodian.answer(BlobRequest("sealed", site.record_id), PEER)
    audit.close()
    assert [kind for kind, _ in logged(audit)] == ["custody-refused", "suppressed"]
    assert logged(audit)[-1][1]["count"] == 4


def test_refusals_render_as_fhir_audit_events_with_outcome_failure(site: Site, tmp_path: Path) -> None:
    audit, _ = audited(site, tmp_path)
    site.custodian.answer(BlobRequest("share", site.record_id, read=site.request(DOCTOR)), PEER)
    audit.trail_read(P, 0, None, 100, "fhir")
    (refusal_hash, refusal), (read_hash, trail_read) = audit.entries(0, 10)
    site_key = site.ledger.validators[0].public_key
    event = fhir_event(refusal_hash, refusal, site_key)
    assert event["outcome"]["code"]["code"] == "4" and event["severity"] == "warning"
    assert event["agent"][0]["who"]["identifier"]["value"] == PEER.hex()
    assert event["entity"][0]["what"]["identifier"]["value"] == site.record_id.hex()
    read = fhir_event(read_hash, trail_read, site_key)
    assert read["outcome"]["code"]["code"] == "0" and read["patient"]["identifier"]["value"] == P.hex()


def test_a_log_that_cannot_be_written_still_refuses_and_counts_the_failure(site: Site, tmp_path: Path) -> None:
    audit, _ = audited(site, tmp_path)
    audit.log.path.mkdir()  # the log's file can no longer be opened for writing
    response = site.custodian.answer(BlobRequest("sealed", site.record_id), PEER)
    assert "signed read request" in response.error and audit.write_failures == 1


def test_a_peer_cannot_make_an_entry_longer_by_naming_huge_ids(site: Site, tmp_path: Path) -> None:
    audit, _ = audited(site, tmp_path)
    bloated = SignedReadRequest(ReadRequest(b"r" * 100_000, b"k" * 100_000, 0), bytes(64))
    assert site.custodian.answer(BlobRequest("share", b"i" * 100_000, read=bloated), PEER).error
    ((_, fields),) = logged(audit)
    assert fields["reader"] == fields["signed_record_id"] == fields["record_id"] == "(100000 bytes: not an id)"
    assert audit.log.path.stat().st_size < 2_000
