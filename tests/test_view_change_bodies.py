"""A view change carries digests and headers, never transactions: it stays small however big
the prepared proposals are, and the transactions follow as their own frames or are fetched
by digest from the replicas that prepared them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from p2pmed.consensus.messages import (
    FetchProposal,
    PrePrepare,
    Proposal,
    Vote,
    VoteKind,
    decode_message,
    encode_message,
    message_kind,
)
from p2pmed.consensus.replica import ReplicaConfig
from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.testing.local_network import LocalNetwork

CHAIN = "view-change-bodies"
CONFIG = ReplicaConfig(pipeline_max=8)


def big_probe(seed: int) -> Transaction:
    return sign_transaction(SigningKey.from_seed(bytes([seed]) * 32), CHAIN, "load.probe", 0, Probe("x" * 400_000))


class Wire:
    """Watches every message in flight: the largest frame of each kind, and which to lose."""

    def __init__(self) -> None:
        self.largest: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.lose_commits = False
        self.lose_view_0_to: tuple[int, str] | None = None
        """(destination, kind): lose every message of that kind and of view 0 to that node."""

    def drops(self, source: int, destination: int, data: bytes) -> bool:
        message = decode_message(data)
        kind = message_kind(message)
        self.largest[kind] = max(self.largest[kind], len(data))
        self.sent[kind] += 1
        if self.lose_commits and isinstance(message, Vote) and message.kind is VoteKind.COMMIT:
            return True
        vote = message.vote if isinstance(message, PrePrepare) else message
        return (destination, kind) == self.lose_view_0_to and isinstance(vote, Vote) and vote.view == 0


def prepare_without_committing(network: LocalNetwork, wire: Wire, txs: list[Transaction]) -> None:
    """Slots prepare at the primary and two backups but commit nowhere (commits are lost)."""
    wire.lose_commits = True
    for first in range(0, len(txs), 2):
        for tx in txs[first : first + 2]:
            network.submit_everywhere(tx)
        network.run(30)
    network.run(200)
    wire.lose_commits = False
    assert all(core and core.store.head()[0] == 0 for core in network.cores), "nothing committed yet"


def committed_ids(network: LocalNetwork, index: int) -> set[bytes]:
    core = network.cores[index]
    assert core is not None
    height = core.store.head()[0]
    return {tx.id for number in range(1, height + 1) for tx in core.store.block(number).txs}  # type: ignore[union-attr]


def test_a_view_change_over_megabytes_of_prepared_proposals_stays_small_and_all_commit(tmp_path: Path) -> None:
    network, wire = LocalNetwork(tmp_path, CHAIN, config=CONFIG), Wire()
    network.drops = wire.drops
    wire.lose_view_0_to = (3, "prepare")  # node 3 never prepares: without the primary, no quorum commits
    txs = [big_probe(seed) for seed in range(1, 17)]  # 16 x 400 KB in 8 slots: 6.4 MB prepared
    prepare_without_committing(network, wire, txs)
    network.crash(0)  # the primary: the others must change view to commit anything
    network.run(12_000)
    for index in (1, 2, 3):
        assert committed_ids(network, index) == {tx.id for tx in txs}, f"node {index} committed every transaction"
    assert len({network.heads()[index] for index in (1, 2, 3)}) == 1
    assert wire.sent["view-change"] >= 3 and wire.sent["new-view"] >= 1
    assert wire.largest["view-change"] < 16_000, "a view change carries certificates, not transactions"
    assert wire.largest["new-view"] < 48_000
    assert wire.largest["pre-prepare"] > 400_000, "the transactions travelled as pre-prepares"
    network.close()


def test_a_new_primary_that_never_saw_the_transactions_fetches_them_by_digest(tmp_path: Path) -> None:
    network, wire = LocalNetwork(tmp_path, CHAIN, config=CONFIG), Wire()
    network.drops = wire.drops
    wire.lose_view_0_to = (1, "pre-prepare")  # the primary of view 1 sees none of view 0's proposals
    txs = [big_probe(seed) for seed in range(1, 9)]
    prepare_without_committing(network, wire, txs)
    network.crash(0)
    network.run(12_000)
    for index in (1, 2, 3):
        assert committed_ids(network, index) == {tx.id for tx in txs}, f"node {index} committed every transaction"
    assert len({network.heads()[index] for index in (1, 2, 3)}) == 1
    assert wire.sent["fetch-proposal"] >= 1 and wire.sent["proposal"] >= 1
    network.close()


def test_a_proposal_nobody_asked_for_or_not_the_one_voted_for_changes_nothing(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN)
    core = network.cores[1]
    assert core is not None
    stray = Proposal(1, network.now_ms, network.keys[0].public_key, (big_probe(1),))
    assert core.receive(network.key(2), encode_message(stray), network.now_ms) == []
    assert core.replica.rejected["unrequested-proposal"] == 1
    ask = FetchProposal(1, stray.digest, 2)
    answer = core.receive(network.key(2), encode_message(ask), network.now_ms)
    assert answer == [], "nothing held for that digest: no answer"
    network.close()
