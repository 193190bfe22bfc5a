"""A backup forwards the transactions it waited on longest to the primary before suspecting it
(``Forward``): gossip may lose a transaction on its way to the primary, and that alone must not
cost a view change; a primary that leaves forwarded transactions out is still replaced. And a
pre-prepare that overtakes its view's NEW-VIEW is kept for that view, not dropped."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from p2pmed import codec
from p2pmed.consensus.actions import Broadcast
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.messages import (
    FORWARD_TXS_MAX,
    Forward,
    PrePrepare,
    Proposal,
    Vote,
    VoteKind,
    decode_message,
    encode_message,
)
from p2pmed.consensus.replica import Replica, ReplicaConfig
from p2pmed.crypto import Ed25519Verifier, SigningKey
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.testing.local_network import LocalNetwork, validator_keys
from signing import signed

CHAIN = "forwarding-test"
KEYS = validator_keys(4)
TIMEOUT_MS = 1_000


def probe(seed: int, nonce: int = 0) -> Transaction:
    return sign_transaction(SigningKey.from_seed(bytes([seed]) * 32), CHAIN, "load.probe", nonce, Probe("f"))


def forged(tx: Transaction) -> Transaction:
    return Transaction(tx.type, tx.chain_id, tx.sender, tx.nonce, tx.body, bytes(64))


@pytest.fixture
def network(tmp_path: Path):  # type: ignore[no-untyped-def]
    net = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(request_timeout_ms=TIMEOUT_MS))
    yield net
    net.close()


def test_a_transaction_gossip_lost_on_its_way_to_the_primary_commits_without_a_view_change(
    network: LocalNetwork,
) -> None:
    lost = probe(1)
    backup = network.cores[2]
    assert backup is not None
    network.send_from(2, backup.submit(lost, network.now_ms))  # no one else ever hears of it
    network.run(4 * TIMEOUT_MS)
    cores = [core for core in network.cores if core is not None]
    assert all(core.store.transaction(lost.id) is not None for core in cores)
    assert [core.replica.view for core in cores] == [0, 0, 0, 0]
    assert backup.sent["forward"] == 1


def test_a_primary_that_leaves_forwarded_transactions_out_is_replaced(network: LocalNetwork) -> None:
    censored = probe(2)
    primary = network.cores[0]
    assert primary is not None
    honest_unproposed = primary.replica._unproposed
    primary.replica._unproposed = lambda: [tx for tx in honest_unproposed() if tx.id != censored.id]  # type: ignore[method-assign]
    for index in (1, 2, 3):  # gossip lost it on its way to the primary only
        core = network.cores[index]
        assert core is not None
        network.send_from(index, core.submit(censored, network.now_ms))
    network.run(6 * TIMEOUT_MS)
    assert primary.replica.received["forward"] >= 2
    assert all(core is not None and core.replica.view >= 1 for core in network.cores[1:])
    assert all(core is not None and core.store.transaction(censored.id) is not None for core in network.cores[1:])


def fresh_replica(index: int, tx_check=lambda tx: True) -> Replica:  # type: ignore[no-untyped-def]
    validators = Validators(CHAIN, tuple(key.public_key for key in KEYS), Ed25519Verifier())
    config = ReplicaConfig(request_timeout_ms=TIMEOUT_MS, batch_delay_ms=1_000, pipeline_max=2)
    return Replica(validators, KEYS[index], config, tx_check, now_ms=1_000)


def test_the_primary_proposes_forwarded_transactions_at_once_before_its_own_queue() -> None:
    primary = fresh_replica(0)
    own = [probe(10 + i) for i in range(3)]
    for tx in own:
        assert primary.submit(tx, 1_000) == []  # a partial batch waits the batch delay
    forwarded = (probe(20), probe(21))
    actions = primary.deliver(2, Forward(forwarded, 2), 1_200)  # overdue at the backup: no delay
    proposals = [
        action.message.proposal
        for action in actions
        if isinstance(action, Broadcast) and isinstance(action.message, PrePrepare)
    ]
    assert [[tx.id for tx in proposal.txs] for proposal in proposals] == [[tx.id for tx in (*forwarded, *own)]]


def test_a_forward_is_taken_once_per_half_timeout_per_backup_and_only_by_the_primary() -> None:
    primary, backup = fresh_replica(0), fresh_replica(1)
    backup.deliver(2, Forward((probe(30),), 2), 1_000)
    assert backup.rejected["forward-not-primary"] == 1 and backup.pending_count == 0
    primary.deliver(2, Forward((probe(31),), 2), 1_000)
    primary.deliver(2, Forward((probe(32),), 2), 1_000 + TIMEOUT_MS // 2 - 1)
    primary.deliver(3, Forward((probe(33),), 3), 1_000 + TIMEOUT_MS // 2 - 1)  # another backup's own allowance
    assert primary.rejected["forward-too-often"] == 1 and primary.pending_count == 2
    primary.deliver(2, Forward((probe(34),), 2), 1_000 + TIMEOUT_MS // 2)
    assert primary.pending_count == 3


def test_a_forward_with_a_forged_transaction_is_refused_from_there_on() -> None:
    checked: list[bytes] = []

    def signature_is_valid(tx: Transaction) -> bool:
        checked.append(tx.id)
        return tx.signature_is_valid()

    primary = fresh_replica(0, signature_is_valid)
    good, bad, after = probe(40), forged(probe(41)), probe(42)
    primary.deliver(1, Forward((good, bad, after), 1), 1_000)
    assert primary.rejected["invalid"] == 1
    assert primary.pending_count == 1 and checked == [good.id, bad.id]


def test_a_forward_from_one_replica_relayed_by_another_is_refused() -> None:
    primary = fresh_replica(0)
    primary.deliver(1, Forward((probe(50),), 2), 1_000)
    assert primary.rejected["invalid"] == 1 and primary.pending_count == 0


@pytest.mark.parametrize("count", [0, FORWARD_TXS_MAX + 1])
def test_a_forward_of_no_or_too_many_transactions_does_not_decode(count: int) -> None:
    txs = tuple(probe(60 + i % 100, i // 100) for i in range(count))
    data = encode_message(Forward((probe(60),), 1)).replace(codec.encode((probe(60),)), codec.encode(txs))
    with pytest.raises(codec.CodecError):
        decode_message(data)


def early_pre_prepare(view: int, signer: int, sequence: int = 1) -> PrePrepare:
    proposal = Proposal(sequence, 1_000, KEYS[signer].public_key, (probe(70),))
    vote = signed(Vote(VoteKind.PRE_PREPARE, view, sequence, proposal.digest, signer, bytes(64)), KEYS[signer], CHAIN)
    return PrePrepare(vote, proposal)


def test_only_the_next_views_primary_gets_a_pre_prepare_kept_before_its_new_view() -> None:
    """A pre-prepare can overtake its view's NEW-VIEW; a replica keeps one per sequence from the
    next view's primary (taken up when the view starts), and nothing from anyone else."""
    backup = fresh_replica(2)
    backup.deliver(3, early_pre_prepare(1, 3), 1_000)  # replica 3 is not view 1's primary
    backup.deliver(1, early_pre_prepare(5, 1), 1_000)  # nor is view 5 the next one
    honest = early_pre_prepare(1, 1)
    forged = PrePrepare(dataclasses.replace(honest.vote, signature=bytes(64)), honest.proposal)
    backup.deliver(1, forged, 1_000)
    assert backup._early == {} and backup.rejected["invalid"] == 1
    kept = early_pre_prepare(1, 1)
    backup.deliver(1, kept, 1_000)
    assert backup._early == {1: kept}
