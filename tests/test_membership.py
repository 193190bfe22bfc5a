"""Validator set changes by a 2f+1 vote: who may vote, what a change may say, when it takes effect."""

from __future__ import annotations

import dataclasses

import pytest
from tests.ledger_harness import CHAIN, LedgerHarness, key

from p2pmed.crypto import EncryptionPrivateKey, SigningKey
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.contracts.identity import OrganisationProfile, OrgProposal
from p2pmed.ledger.contracts.membership import (
    EPOCH_DELAY_BLOCKS,
    ValidatorChange,
    ValidatorJoin,
    ValidatorProfile,
    epoch_at,
    sign_join,
)
from p2pmed.ledger.errors import RejectReason

CHANGE = "validator.change"


def joining(
    name: str, organisation: bytes, address: str = "/ip4/127.0.0.1/tcp/27000"
) -> tuple[SigningKey, ValidatorJoin]:
    signer = key(name)
    profile = ValidatorProfile(signer.public_key, organisation, address, EncryptionPrivateKey.generate().public_key)
    return signer, ValidatorJoin(profile, sign_join(signer, profile, CHAIN))


@pytest.fixture
def ledger() -> LedgerHarness:
    return LedgerHarness()


def vote(ledger: LedgerHarness, change: ValidatorChange, voters: int = 3) -> int:
    """The first ``voters`` validators vote for ``change``; returns the height of the last vote."""
    for validator in ledger.validators[:voters]:
        ledger.ok(validator, CHANGE, change)
    return ledger.height


def keys_at(ledger: LedgerHarness, height: int) -> tuple[bytes, ...]:
    epoch = epoch_at(ledger.state, height)
    assert epoch is not None
    return epoch.keys


def test_a_change_takes_effect_a_delay_after_the_quorum_th_vote(ledger: LedgerHarness) -> None:
    genesis_keys = tuple(validator.public_key for validator in ledger.validators)
    newcomer, join = joining("newcomer", genesis_keys[0])
    vote(ledger, ValidatorChange(join=(join,)), voters=2)
    assert membership.latest_epoch(ledger.state).number == 0  # type: ignore[union-attr]
    ledger.ok(ledger.validators[2], CHANGE, ValidatorChange(join=(join,)))
    passed_at = ledger.height
    first = passed_at + EPOCH_DELAY_BLOCKS
    assert keys_at(ledger, first - 1) == genesis_keys
    assert keys_at(ledger, first) == (*genesis_keys, newcomer.public_key)
    assert membership.latest_epoch(ledger.state).first_height == first  # type: ignore[union-attr]
    assert newcomer.public_key in membership.known_validator_keys(ledger.state)


def test_votes_for_different_changes_do_not_add_up(ledger: LedgerHarness) -> None:
    organisation = ledger.validators[0].public_key
    _, first = joining("first", organisation)
    _, second = joining("second", organisation)
    vote(ledger, ValidatorChange(join=(first,)), voters=2)
    ledger.ok(ledger.validators[2], CHANGE, ValidatorChange(join=(second,)))
    assert membership.latest_epoch(ledger.state).number == 0  # type: ignore[union-attr]
    # A validator changes its vote by voting again: the third vote for ``first`` passes it.
    ledger.ok(ledger.validators[2], CHANGE, ValidatorChange(join=(first,)))
    assert membership.latest_epoch(ledger.state).number == 1  # type: ignore[union-attr]


def test_only_validators_in_force_vote(ledger: LedgerHarness) -> None:
    outsider = key("outsider")
    ledger.admit_organisation(outsider, "hospital")
    _, join = joining("newcomer", outsider.public_key)
    detail = ledger.refused(outsider, CHANGE, ValidatorChange(join=(join,)), RejectReason.NOT_AUTHORISED)
    assert "only a validator" in detail


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda join, ledger: dataclasses.replace(join, proof=bytes(64)), "did not sign its profile"),
        (
            lambda join, ledger: ValidatorJoin(
                dataclasses.replace(join.profile, address="/ip4/10.0.0.9/tcp/1"), join.proof
            ),
            "did not sign its profile",
        ),
        (
            lambda join, ledger: joining("stranger-org", key("no such organisation").public_key)[1],
            "organisation is not in force",
        ),
        (lambda join, ledger: joining("bad-address", ledger.validators[0].public_key, "localhost:1")[1], "multiaddr"),
    ],
)
def test_a_join_must_be_signed_by_its_key_for_an_organisation_in_force(
    ledger: LedgerHarness, mutate: object, expected: str
) -> None:
    _, join = joining("newcomer", ledger.validators[0].public_key)
    bad = mutate(join, ledger)  # type: ignore[operator]
    detail = ledger.refused(ledger.validators[0], CHANGE, ValidatorChange(join=(bad,)), RejectReason.INVALID)
    assert expected in detail


def test_a_used_key_never_joins(ledger: LedgerHarness) -> None:
    person_org = key("clinic")
    ledger.admit_organisation(person_org, "clinic")
    profile = ValidatorProfile(
        person_org.public_key, person_org.public_key, "/ip4/127.0.0.1/tcp/1", EncryptionPrivateKey.generate().public_key
    )
    join = ValidatorJoin(profile, sign_join(person_org, profile, CHAIN))
    detail = ledger.refused(ledger.validators[0], CHANGE, ValidatorChange(join=(join,)), RejectReason.INVALID)
    assert "never reused" in detail
    # A genesis validator's key cannot join a second time either.
    again = dataclasses.replace(profile, key=ledger.validators[1].public_key)
    rejoin = ValidatorJoin(again, sign_join(ledger.validators[1], again, CHAIN))
    ledger.refused(ledger.validators[0], CHANGE, ValidatorChange(join=(rejoin,)), RejectReason.INVALID)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (ValidatorChange(), "removes and adds nobody"),
        (ValidatorChange(remove=(bytes(32),)), "is not a validator"),
        (ValidatorChange(remove=(b"\x01" * 32, b"\x01" * 32)), "removed twice"),
    ],
)
def test_a_change_must_name_real_validators(ledger: LedgerHarness, change: ValidatorChange, expected: str) -> None:
    detail = ledger.refused(ledger.validators[0], CHANGE, change, RejectReason.INVALID)
    assert expected in detail


def test_no_change_leaves_the_network_without_validators(ledger: LedgerHarness) -> None:
    everyone = ValidatorChange(remove=tuple(validator.public_key for validator in ledger.validators))
    detail = ledger.refused(ledger.validators[0], CHANGE, everyone, RejectReason.INVALID)
    assert "1..100 validators" in detail


def test_one_change_at_a_time(ledger: LedgerHarness) -> None:
    organisation = ledger.validators[0].public_key
    _, first = joining("first", organisation)
    _, second = joining("second", organisation)
    passed_at = vote(ledger, ValidatorChange(join=(first,)))
    detail = ledger.refused(ledger.validators[0], CHANGE, ValidatorChange(join=(second,)), RejectReason.INVALID)
    assert f"takes effect at height {passed_at + EPOCH_DELAY_BLOCKS}" in detail
    ledger.skip_to(passed_at + EPOCH_DELAY_BLOCKS)
    ledger.ok(ledger.validators[0], CHANGE, ValidatorChange(join=(second,)))


def test_the_new_set_governs_from_its_first_height(ledger: LedgerHarness) -> None:
    """A rotation (remove the old key, add a new one): from the first height the new key votes
    as a validator and the old one does not; the quorum is counted over the new set."""
    old = ledger.validators[3]
    new, join = joining("rotated", old.public_key)
    passed_at = vote(ledger, ValidatorChange(remove=(old.public_key,), join=(join,)))
    candidate = key("new-lab")
    profile = OrganisationProfile(
        candidate.public_key, "new lab", "laboratory", EncryptionPrivateKey.generate().public_key
    )
    ledger.ok(old, "identity.org.propose", OrgProposal(profile))  # still a validator before the first height
    ledger.skip_to(passed_at + EPOCH_DELAY_BLOCKS)
    ledger.refused(old, "identity.org.propose", OrgProposal(profile), RejectReason.NOT_AUTHORISED)
    ledger.refused(old, CHANGE, ValidatorChange(remove=(new.public_key,)), RejectReason.NOT_AUTHORISED)
    assert keys_at(ledger, ledger.height + 1)[-1] == new.public_key
    ledger.ok(new, "identity.org.propose", OrgProposal(profile))


def test_a_passed_change_clears_every_vote(ledger: LedgerHarness) -> None:
    organisation = ledger.validators[0].public_key
    _, first = joining("first", organisation)
    _, second = joining("second", organisation)
    ledger.ok(ledger.validators[3], CHANGE, ValidatorChange(join=(second,)))
    passed_at = vote(ledger, ValidatorChange(join=(first,)))
    ledger.skip_to(passed_at + EPOCH_DELAY_BLOCKS)
    # validator 3's old vote for ``second`` is gone: with the 5-member set (quorum 4), three
    # fresh votes plus a stale one would otherwise pass it.
    vote(ledger, ValidatorChange(join=(second,)), voters=3)
    assert membership.latest_epoch(ledger.state).number == 1  # type: ignore[union-attr]
