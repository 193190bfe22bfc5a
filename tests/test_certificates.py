"""Every refusal branch of the certificate checks, each against one change to a valid object,
and the selection a new view must make (Castro & Liskov §4.4)."""

from __future__ import annotations

import dataclasses

import pytest

from p2pmed.consensus.certificates import InvalidMessage, Validators, selected_proposals
from p2pmed.consensus.messages import (
    Checkpoint,
    CommitCertificate,
    NewView,
    PreparedCertificate,
    PrePrepare,
    Proposal,
    ViewChange,
    Vote,
    VoteKind,
    encode_message,
)
from p2pmed.consensus.sizes import largest_new_view, largest_view_change, new_view_fits
from p2pmed.crypto import Ed25519Verifier, SigningKey
from p2pmed.ledger.block import GENESIS_PARENT_HASH, Block
from signing import Signed
from signing import signed as sign_with

CHAIN = "certificates-test"
KEYS = [SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
VALIDATORS = Validators(CHAIN, tuple(key.public_key for key in KEYS), Ed25519Verifier())
WINDOW = 8
H1 = bytes([1]) * 32


def signed(message: Signed, key_of: int | None = None) -> Signed:
    """Signed by its own replica's key, or by ``key_of``'s."""
    return sign_with(message, KEYS[message.replica if key_of is None else key_of], CHAIN)


def proposal(sequence: int, label: int = 0) -> Proposal:
    return Proposal(sequence, 1_000 + label, KEYS[0].public_key, ())


def vote(kind: VoteKind, view: int, sequence: int, digest: bytes, replica: int) -> Vote:
    return signed(Vote(kind, view, sequence, digest, replica, bytes(64)))


def pre_prepare(view: int, sequence: int, label: int = 0) -> PrePrepare:
    body = proposal(sequence, label)
    return PrePrepare(vote(VoteKind.PRE_PREPARE, view, sequence, body.digest, view % 4), body)


def prepared(view: int, sequence: int, label: int = 0, preparers: tuple[int, ...] | None = None) -> PreparedCertificate:
    pp = pre_prepare(view, sequence, label)
    others = preparers if preparers is not None else tuple(r for r in range(4) if r != view % 4)[:2]
    prepares = tuple(vote(VoteKind.PREPARE, view, sequence, pp.vote.digest, r) for r in others)
    return PreparedCertificate(pp.vote, prepares, pp.proposal.header)


def checkpoints(sequence: int, signers: tuple[int, ...] = (0, 1, 2), block_hash: bytes = H1) -> tuple[Checkpoint, ...]:
    return tuple(signed(Checkpoint(sequence, block_hash, r, bytes(64))) for r in signers)


def view_change(
    new_view: int, replica: int, stable: int = 0, certs: tuple[PreparedCertificate, ...] = ()
) -> ViewChange:
    proof = checkpoints(stable) if stable else ()
    return signed(ViewChange(new_view, stable, proof, certs, replica, bytes(64)))


def refused(check: object, match: str) -> None:
    with pytest.raises(InvalidMessage, match=match):
        check()  # type: ignore[operator]


# -- signatures and pre-prepares --------------------------------------------------


def test_a_signed_message_must_come_from_a_validator_with_a_valid_signature() -> None:
    good = vote(VoteKind.PREPARE, 0, 1, H1, 2)
    VALIDATORS.check_signed(good)
    refused(lambda: VALIDATORS.check_signed(dataclasses.replace(good, replica=4)), "not a validator")
    refused(lambda: VALIDATORS.check_signed(signed(good, key_of=3)), "bad prepare signature from replica 2")


def test_a_pre_prepare_is_the_primary_s_signed_vote_for_its_own_proposal() -> None:
    good = pre_prepare(1, 3)
    VALIDATORS.check_pre_prepare(good)
    as_prepare = PrePrepare(vote(VoteKind.PREPARE, 1, 3, good.vote.digest, 1), good.proposal)
    refused(lambda: VALIDATORS.check_pre_prepare(as_prepare), "carries a prepare vote")
    from_backup = PrePrepare(vote(VoteKind.PRE_PREPARE, 1, 3, good.vote.digest, 2), good.proposal)
    refused(lambda: VALIDATORS.check_pre_prepare(from_backup), "not its primary")
    refused(lambda: VALIDATORS.check_pre_prepare(PrePrepare(good.vote, proposal(3, 9))), "does not match its vote")
    refused(lambda: VALIDATORS.check_pre_prepare(PrePrepare(good.vote, proposal(4))), "does not match its vote")


# -- prepared and commit certificates ---------------------------------------------------


def test_a_prepared_certificate_needs_quorum_minus_one_distinct_matching_prepares_not_the_primary_s() -> None:
    VALIDATORS.check_prepared_certificate(prepared(0, 1))
    refused(lambda: VALIDATORS.check_prepared_certificate(prepared(0, 1, preparers=(1,))), "has 1 prepares, needs 2")
    padded = prepared(0, 1, preparers=(1, 2, 3))  # valid votes, but more than a certificate needs
    refused(lambda: VALIDATORS.check_prepared_certificate(padded), "has 3 prepares, needs 2")
    refused(lambda: VALIDATORS.check_prepared_certificate(prepared(0, 1, preparers=(0, 1))), "primary's prepare")
    refused(lambda: VALIDATORS.check_prepared_certificate(prepared(0, 1, preparers=(1, 1))), "votes twice")
    good = prepared(0, 1)
    stray = vote(VoteKind.PREPARE, 0, 2, good.pre_prepare.digest, 3)
    refused(
        lambda: VALIDATORS.check_prepared_certificate(dataclasses.replace(good, prepares=(*good.prepares[:1], stray))),
        "do not match",
    )
    other_header = proposal(1, label=9).header
    refused(
        lambda: VALIDATORS.check_prepared_certificate(dataclasses.replace(good, header=other_header)),
        "does not match its header",
    )


def test_a_commit_certificate_needs_a_quorum_of_matching_commits() -> None:
    digest = proposal(1).digest
    commits = tuple(vote(VoteKind.COMMIT, 0, 1, digest, r) for r in range(3))
    VALIDATORS.check_commit_certificate(CommitCertificate(commits), 1, digest)
    refused(lambda: VALIDATORS.check_commit_certificate(CommitCertificate(commits[:2]), 1, digest), "has 2 commits")
    refused(lambda: VALIDATORS.check_commit_certificate(CommitCertificate(commits), 2, digest), "do not match")


def test_a_committed_block_must_extend_the_chain_it_is_offered_for() -> None:
    body = proposal(1)
    block = Block(body.block_header(CHAIN, GENESIS_PARENT_HASH), ())
    commits = CommitCertificate(tuple(vote(VoteKind.COMMIT, 0, 1, body.digest, r) for r in range(3)))
    VALIDATORS.check_committed_block(block, commits, GENESIS_PARENT_HASH)
    refused(lambda: VALIDATORS.check_committed_block(block, commits, H1), "block 1")


# -- checkpoints and view changes ---------------------------------------------------------


def test_a_checkpoint_proof_is_a_quorum_of_distinct_signers_agreeing_on_one_hash() -> None:
    assert VALIDATORS.check_checkpoint_proof(4, checkpoints(4)) == H1
    assert VALIDATORS.check_checkpoint_proof(0, ()) is None
    refused(lambda: VALIDATORS.check_checkpoint_proof(0, checkpoints(4)), "genesis checkpoint needs no proof")
    mixed = (*checkpoints(4, (0, 1)), *checkpoints(4, (2,), block_hash=bytes(32)))
    refused(lambda: VALIDATORS.check_checkpoint_proof(4, mixed), "does not agree")
    refused(lambda: VALIDATORS.check_checkpoint_proof(8, checkpoints(4)), "does not agree")
    refused(lambda: VALIDATORS.check_checkpoint_proof(4, checkpoints(4, (0, 1))), "2 distinct signers")
    refused(lambda: VALIDATORS.check_checkpoint_proof(4, checkpoints(4, (0, 1, 1))), "2 distinct signers")
    refused(lambda: VALIDATORS.check_checkpoint_proof(4, checkpoints(4, (0, 1, 2, 3))), "4 distinct signers")


def test_a_view_change_carries_certificates_inside_its_window_from_earlier_views_once_each() -> None:
    VALIDATORS.check_view_change(view_change(2, 1, stable=4, certs=(prepared(0, 5), prepared(1, 6))), WINDOW)
    outside = view_change(2, 1, stable=4, certs=(prepared(0, 4 + WINDOW + 1),))
    refused(lambda: VALIDATORS.check_view_change(outside, WINDOW), "outside")
    below = view_change(2, 1, stable=4, certs=(prepared(0, 4),))
    refused(lambda: VALIDATORS.check_view_change(below, WINDOW), "outside")
    same_view = view_change(1, 1, certs=(prepared(1, 1),))
    refused(lambda: VALIDATORS.check_view_change(same_view, WINDOW), "not before the new one")
    twice = view_change(2, 1, certs=(prepared(0, 1), prepared(1, 1)))
    refused(lambda: VALIDATORS.check_view_change(twice, WINDOW), "two prepared certificates for sequence 1")
    weak = view_change(2, 1, certs=(prepared(0, 1, preparers=(2,)),))
    refused(lambda: VALIDATORS.check_view_change(weak, WINDOW), "needs 2")


def new_view(view: int, senders: tuple[int, ...] = (0, 1, 2), pps: tuple[PrePrepare, ...] = ()) -> NewView:
    votes, headers = tuple(pp.vote for pp in pps), tuple(pp.proposal.header for pp in pps)
    return signed(NewView(view, tuple(view_change(view, r) for r in senders), votes, headers, view % 4, bytes(64)))


def test_a_new_view_is_its_primary_s_with_a_quorum_of_view_changes_for_that_view() -> None:
    VALIDATORS.check_new_view(new_view(1, pps=(pre_prepare(1, 1),)), WINDOW)
    mismatched = new_view(1, pps=(pre_prepare(1, 1),))
    mismatched = signed(dataclasses.replace(mismatched, headers=(proposal(1, label=9).header,)))
    refused(lambda: VALIDATORS.check_new_view(mismatched, WINDOW), "does not match its header")
    too_long = new_view(1, pps=tuple(pre_prepare(1, s) for s in range(1, WINDOW + 2)))
    refused(lambda: VALIDATORS.check_new_view(too_long, WINDOW), f"{WINDOW + 1} pre-prepares, more than the window")
    not_primary = signed(dataclasses.replace(new_view(1), replica=2))
    refused(lambda: VALIDATORS.check_new_view(not_primary, WINDOW), "not its primary")
    refused(lambda: VALIDATORS.check_new_view(new_view(1, senders=(0, 1)), WINDOW), "2 distinct view changes")
    refused(lambda: VALIDATORS.check_new_view(new_view(1, senders=(0, 1, 2, 3)), WINDOW), "4 distinct view changes")
    refused(lambda: VALIDATORS.check_new_view(new_view(1, senders=(0, 1, 1)), WINDOW), "2 distinct view changes")
    other = new_view(1)
    other = signed(dataclasses.replace(other, view_changes=(*other.view_changes[:2], view_change(2, 2))))
    refused(lambda: VALIDATORS.check_new_view(other, WINDOW), "view change for another view")
    refused(lambda: VALIDATORS.check_new_view(new_view(1, pps=(pre_prepare(2, 1),)), WINDOW), "another view")


# -- selection ---------------------------------------------------------------------------


def test_a_new_view_re_proposes_above_the_highest_stable_point_what_prepared_in_the_highest_view() -> None:
    old, newer = prepared(0, 5, label=1), prepared(1, 5, label=2)
    view_changes = [
        view_change(2, 0, stable=4, certs=(old, prepared(0, 6, label=3))),
        view_change(2, 1, stable=4, certs=(newer,)),
        view_change(2, 2, stable=0, certs=(prepared(0, 3),)),  # below the highest stable point: ignored
    ]
    low, chosen = selected_proposals(view_changes)
    assert low == 4
    assert chosen == {5: newer.header, 6: proposal(6, 3).header}
    assert selected_proposals(list(reversed(view_changes))) == (low, chosen), (
        "the order of view changes does not matter"
    )


def test_a_new_view_s_shape_is_refused_before_its_signature_is_checked() -> None:
    four = new_view(1, senders=(0, 1, 2, 3))
    fifth = ViewChange(1, 0, (), (), 4, bytes(64))  # from no validator: more view changes than validators
    too_many = dataclasses.replace(four, view_changes=(*four.view_changes, fifth))  # its signature no longer holds
    refused(lambda: VALIDATORS.check_new_view(too_many, WINDOW), "5 distinct view changes")
    unsigned = dataclasses.replace(new_view(1, senders=(0, 1)), signature=bytes(64))
    refused(lambda: VALIDATORS.check_new_view(unsigned, WINDOW), "2 distinct view changes")


def test_the_largest_new_view_a_configuration_allows_is_built_and_must_fit_a_frame() -> None:
    assert new_view_fits(quorum=3, window=64)  # the default network: 4 validators, L = 64
    size = len(encode_message(largest_new_view(3, 64)))
    assert size < 256 << 10, f"a 4-validator new-view is {size} bytes: bodies must not travel in it"
    assert len(encode_message(largest_view_change(3, 64))) * 3 < size
    assert new_view_fits(quorum=33, window=64)  # 49 validators
    assert not new_view_fits(quorum=43, window=64)  # 64 validators: refused at construction
    assert new_view_fits(quorum=43, window=32)
