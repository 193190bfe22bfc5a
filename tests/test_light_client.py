"""An observer's checks of the blocks a validator hands it: each block the next height, chained
to the head, with a commit certificate of a quorum of its epoch's validators; and the
follower that stores only what passes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from libp2p.peer.id import ID

from p2pmed import codec
from p2pmed.consensus.certificates import InvalidMessage, Validators
from p2pmed.consensus.light_client import check_next
from p2pmed.consensus.messages import BlockWithCertificate, CommitCertificate, Vote, VoteKind, proposal_digest
from p2pmed.crypto import Ed25519Verifier, SigningKey
from p2pmed.ledger.block import GENESIS_PARENT_HASH, make_block
from p2pmed.ledger.contracts import ALL_TX_TYPES
from p2pmed.ledger.machine import Ledger
from p2pmed.net.block_sync import SyncAnswer
from p2pmed.node.follower import ChainFollower
from p2pmed.store import Store
from signing import signed

CHAIN = "light-client-test"
KEYS = [SigningKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
OUTSIDER = SigningKey.from_seed(b"\x99" * 32)
VALIDATORS = Validators(CHAIN, tuple(key.public_key for key in KEYS), Ed25519Verifier())


def certified(
    height: int, previous_hash: bytes, signers: tuple[int, ...] = (0, 1, 2), label: int = 0
) -> BlockWithCertificate:
    block = make_block(CHAIN, height, previous_hash, (), KEYS[0].public_key, 1_000 + height + label)
    digest = proposal_digest(block.header)
    commits = tuple(signed(Vote(VoteKind.COMMIT, 0, height, digest, r, bytes(64)), KEYS[r], CHAIN) for r in signers)
    return BlockWithCertificate(block, CommitCertificate(commits))


def chain(length: int) -> list[BlockWithCertificate]:
    items, previous = [], GENESIS_PARENT_HASH
    for height in range(1, length + 1):
        items.append(certified(height, previous))
        previous = items[-1].block.hash
    return items


def test_a_certified_chain_from_the_head_is_taken_whole() -> None:
    items = chain(3)
    previous_hash = GENESIS_PARENT_HASH
    for height, item in enumerate(items):
        check_next(VALIDATORS, height, previous_hash, item)
        previous_hash = item.block.hash


def forged_third(items: list[BlockWithCertificate], how: str) -> BlockWithCertificate:
    good = items[2]
    commits = good.certificate.commits
    match how:
        case "outsider":  # a key outside the genesis set signs as replica 2
            forged = signed(dataclasses.replace(commits[2], signature=bytes(64)), OUTSIDER, CHAIN)
            return dataclasses.replace(good, certificate=CommitCertificate((*commits[:2], forged)))
        case "too-few":
            return dataclasses.replace(good, certificate=CommitCertificate(commits[:2]))
        case "twice":
            return dataclasses.replace(good, certificate=CommitCertificate((*commits[:2], commits[0])))
        case "other-block":  # a valid certificate, for another block at the same height
            return BlockWithCertificate(certified(3, items[1].block.hash, label=7).block, good.certificate)
        case "not-chained":
            return certified(3, bytes(32))
        case "skips":
            return certified(4, items[1].block.hash)
    raise AssertionError(how)


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("outsider", "bad commit signature from replica 2"),
        ("too-few", "has 2 commits, needs 3"),
        ("twice", "votes twice"),
        ("other-block", "do not match"),
        ("not-chained", "does not extend the current head"),
        ("skips", "block at height 4, expected 3"),
    ],
)
def test_a_forged_block_is_refused(how: str, reason: str) -> None:
    items = chain(4)
    with pytest.raises(InvalidMessage) as refused:
        check_next(VALIDATORS, 2, items[1].block.hash, forged_third(items, how))
    assert reason in refused.value.reason


def test_the_follower_stores_what_verifies_and_nothing_after_a_forgery(tmp_path: Path) -> None:
    ledger = Ledger(CHAIN, ALL_TX_TYPES)
    items = chain(4)
    committed: list[int] = []
    with Store.open(tmp_path / "observer.sqlite3", CHAIN) as store:

        def take(item: BlockWithCertificate) -> None:  # what NodeCore.apply_synced does
            check_next(VALIDATORS, *store.head(), item)
            store.append_block(item.block, ledger.execute_block(store, item.block), codec.encode(item.certificate))
            committed.append(item.block.height)

        follower = ChainFollower(store, lambda: VALIDATORS, take)
        forged = SyncAnswer("", 4, (*items[:2], forged_third(items, "outsider"), items[3]))
        applied, refusal = follower.apply(forged)
        assert (applied, store.head(), committed) == (2, (2, items[1].block.hash), [1, 2])
        assert refusal is not None
        assert store.certificate(2) == codec.encode(items[1].certificate)
        assert follower.apply(SyncAnswer("", 4, tuple(items[2:]))) == (2, None)
        assert store.head() == (4, items[3].block.hash) and committed == [1, 2, 3, 4]


def test_the_validators_head_is_what_f_plus_one_of_them_claim(tmp_path: Path) -> None:
    with Store.open(tmp_path / "observer.sqlite3", CHAIN) as store:
        follower = ChainFollower(store, lambda: VALIDATORS, lambda item: None)
        follower.heads = {ID(b"one"): 30}
        assert follower.validators_head == 0  # one claim may be a lie
        follower.heads = {ID(b"liar"): 10**9, ID(b"two"): 40, ID(b"three"): 30}
        assert follower.validators_head == 40
