"""What an attacker with legal transactions or a Byzantine primary could do with block bytes and
block time, and what stops it: proposals capped in bytes, block-fetch answers capped in bytes,
block time validated by backups and clamped by the ledger."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from p2pmed import codec
from p2pmed.consensus.messages import (
    FETCH_BYTES_MAX,
    PROPOSAL_BYTES_MAX,
    BlockWithCertificate,
    Checkpoint,
    CommitCertificate,
    FetchBlocks,
    NewView,
    PreparedCertificate,
    PrePrepare,
    Proposal,
    ViewChange,
    Vote,
    VoteKind,
    blocks_answer,
    encode_message,
    header_digest,
)
from p2pmed.consensus.replica import ReplicaConfig
from p2pmed.crypto import SigningKey
from p2pmed.ledger.block import StateCommitment, make_block
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.machine import ledger_time_ms
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.node.core import StorageFailed
from p2pmed.testing.local_network import LocalNetwork
from signing import signed

CHAIN = "hardening-test"
BIG_LABEL = "x" * 400_000  # a legal transaction of ~400 KB (the rules refuse it at execution, after ordering)


def big_probe(seed: int) -> Transaction:
    return sign_transaction(SigningKey.from_seed(bytes([seed]) * 32), CHAIN, "load.probe", 0, Probe(BIG_LABEL))


def test_big_legal_transactions_fill_blocks_by_bytes_and_all_commit(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(block_bytes_max=codec.TX_SIZE_MAX))
    txs = [big_probe(seed) for seed in range(1, 25)]  # 24 x 400 KB: 9.6 MB, more than a 8 MiB fetch answer
    network.crash(3)
    for tx in txs:
        network.submit_everywhere(tx)
    network.run(4_000)
    store = network.cores[0].store  # type: ignore[union-attr]
    height = store.head()[0]
    blocks = [store.block(number) for number in range(1, height + 1)]
    assert sum(len(block.txs) for block in blocks if block) == len(txs), "every transaction committed"
    assert all(block and sum(len(tx.encoded) for tx in block.txs) <= codec.TX_SIZE_MAX for block in blocks)

    available = [
        BlockWithCertificate(block, codec.decode(CommitCertificate, store.certificate(block.height) or b"", 1 << 20))
        for block in blocks
        if block
    ]
    answer = blocks_answer(iter(available))
    assert answer.more and 0 < len(answer.blocks) < len(available)
    assert len(encode_message(answer)) <= FETCH_BYTES_MAX + 1024
    assert not blocks_answer(iter(available[-1:])).more

    network.restart(3)  # an idle network: it probes a peer, then catches up through byte-capped answers
    network.run(8_000)
    assert len(set(network.heads())) == 1
    network.close()


def test_a_proposal_over_the_protocol_byte_limit_cannot_be_made_or_decoded() -> None:
    txs = tuple(
        sign_transaction(SigningKey.from_seed(bytes([seed]) * 32), CHAIN, "load.probe", 0, Probe("y" * 1_000_000))
        for seed in range(1, 6)
    )
    assert sum(len(tx.encoded) for tx in txs) > PROPOSAL_BYTES_MAX
    with pytest.raises(ValueError, match="a proposal carries at most"):
        Proposal(1, 1_000, bytes(32), txs)


def genesis_state(network: LocalNetwork) -> StateCommitment:
    core = network.cores[0]
    assert core is not None
    state = core.store.commitment(0)
    assert state is not None
    return state


def signed_pre_prepare(key: SigningKey, sequence: int, time_ms: int, state: StateCommitment) -> PrePrepare:
    proposal = Proposal(sequence, time_ms, key.public_key, (), state)
    return PrePrepare(
        signed(Vote(VoteKind.PRE_PREPARE, 0, sequence, proposal.digest, 0, bytes(64)), key, CHAIN), proposal
    )


@pytest.mark.parametrize(
    ("offset_ms", "prepared"),
    [(0, True), (9_000, True), (-9_000, True), (60_000, False), (-60_000, False), (-10_000_000, False)],
)
def test_a_backup_prepares_a_proposal_only_if_dated_near_its_own_clock(
    tmp_path: Path, offset_ms: int, prepared: bool
) -> None:
    network = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(block_time_skew_max_ms=10_000))
    network.now_ms = 20_000_000
    backup = network.cores[1]
    assert backup is not None
    data = encode_message(signed_pre_prepare(network.keys[0], 1, network.now_ms + offset_ms, genesis_state(network)))
    sent = backup.receive(network.key(0), data, network.now_ms)
    assert bool(sent) is prepared
    assert backup.replica.rejected["invalid"] == (0 if prepared else 1)
    network.close()


def test_a_backup_refuses_a_proposal_committing_to_another_state_and_holds_one_it_cannot_check_yet(
    tmp_path: Path,
) -> None:
    network = LocalNetwork(tmp_path, CHAIN)
    backup = network.cores[1]
    assert backup is not None
    genesis = genesis_state(network)
    forged = dataclasses.replace(genesis, state_root=bytes(32))
    refused = signed_pre_prepare(network.keys[0], 1, network.now_ms, forged)
    assert backup.receive(network.key(0), encode_message(refused), network.now_ms) == []
    assert backup.replica.rejected["invalid"] == 1
    assert "differs from ours" in " ".join(backup.replica.note_log())
    ahead = dataclasses.replace(genesis, height=1)  # block 1 has not executed here
    held = signed_pre_prepare(network.keys[0], 2, network.now_ms, ahead)
    assert backup.receive(network.key(0), encode_message(held), network.now_ms) == []
    assert backup.replica.rejected["invalid"] == 1, "held, not refused"
    network.close()


def test_a_proposal_must_be_dated_after_the_one_before_it(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(pipeline_max=4))
    network.now_ms = 20_000_000
    backup = network.cores[1]
    assert backup is not None
    assert backup.receive(
        network.key(0),
        encode_message(signed_pre_prepare(network.keys[0], 1, network.now_ms, genesis_state(network))),
        network.now_ms,
    )
    later = signed_pre_prepare(network.keys[0], 2, network.now_ms - 1, genesis_state(network))
    assert backup.receive(network.key(0), encode_message(later), network.now_ms) == []
    assert backup.replica.rejected["invalid"] == 1
    network.close()


def test_the_ledger_clock_never_goes_back_so_a_block_dated_in_the_past_revives_nothing() -> None:
    from ledger_harness import LedgerHarness, key

    ledger = LedgerHarness()
    sender = key("clock")
    tx = sign_transaction(sender, CHAIN, "load.probe", 0, Probe("late"))
    first = make_block(CHAIN, 1, ledger.previous_hash, (), ledger.validators[0].public_key, 5_000_000)
    ledger.state.apply(ledger.ledger.execute_block(ledger.state, first).changes)
    assert ledger_time_ms(ledger.state) == 5_000_000
    backdated = make_block(CHAIN, 2, first.hash, (tx,), ledger.validators[0].public_key, 1)
    execution = ledger.ledger.execute_block(ledger.state, backdated)
    assert execution.time_ms == 5_000_000
    ledger.state.apply(execution.changes)
    assert ledger_time_ms(ledger.state) == 5_000_000


def test_one_validator_claiming_a_huge_height_cannot_keep_a_node_catching_up(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(batch_size_max=1))
    sender = SigningKey.from_seed(b"h" * 32)
    network.crash(2)
    for nonce in range(20):  # node 2 is down for these blocks
        network.submit_everywhere(sign_transaction(sender, CHAIN, "load.probe", nonce, Probe(f"{nonce}")))
        network.run(100)
    liar = network.keys[3]
    forged = signed(Checkpoint(1 << 60, bytes(32), 3, bytes(64)), liar, CHAIN)
    network.restart(2)
    lagging = network.cores[2]
    assert lagging is not None
    lagging.receive(
        network.key(3), encode_message(forged), network.now_ms
    )  # before it learns from honest peers it is behind
    for nonce in range(20, 30):  # the others go on committing: their votes show it is behind
        network.submit_everywhere(sign_transaction(sender, CHAIN, "load.probe", nonce, Probe(f"{nonce}")))
        network.run(100)
    network.run(8_000)
    assert len(set(network.heads())) == 1, "it caught up"
    assert lagging.replica.catching_up_to is None, "and knows it"
    fetches = lagging.sent["fetch-blocks"]
    network.run(3_000)
    assert lagging.sent["fetch-blocks"] - fetches <= 1, "no fetch loop towards the liar's height"
    network.close()


def test_a_failed_store_write_stops_the_node_and_a_restart_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = LocalNetwork(tmp_path, CHAIN)
    sender = SigningKey.from_seed(b"d" * 32)
    network.submit_everywhere(sign_transaction(sender, CHAIN, "load.probe", 0, Probe("first")))
    network.run(1_000)
    failing = network.cores[1]
    assert failing is not None

    def disk_full(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(failing.store, "consensus_put", disk_full)
    tx = sign_transaction(sender, CHAIN, "load.probe", 1, Probe("second"))
    network.submit_everywhere(tx)
    with pytest.raises(StorageFailed, match="disk is full"):
        network.run(1_000)  # node 1's prepare cannot be made durable: it stops, and sends nothing
    with pytest.raises(StorageFailed):
        failing.tick(network.now_ms + 10_000)  # and it stays stopped
    network.crash(1)
    network.run(3_000)
    network.restart(1)
    network.run(8_000)
    assert len(set(network.heads())) == 1 and network.heads()[0][0] == 2  # type: ignore[index]
    network.close()


def test_a_peer_asking_for_blocks_too_often_is_served_once_per_interval(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(fetch_serve_interval_ms=250))
    network.submit_everywhere(sign_transaction(SigningKey.from_seed(b"f" * 32), CHAIN, "load.probe", 0, Probe("b")))
    network.run(1_000)
    server = network.cores[0]
    assert server is not None
    fetch = encode_message(FetchBlocks(1, 2))
    assert server.receive(network.key(2), fetch, network.now_ms)  # served
    assert server.receive(network.key(2), fetch, network.now_ms + 100) == []  # 47 bytes may not buy another 8 MiB yet
    assert server.replica.rejected["fetch-too-often"] == 1
    assert server.receive(
        network.key(3), encode_message(FetchBlocks(1, 3)), network.now_ms + 100
    )  # another peer: its own budget
    assert server.receive(network.key(2), fetch, network.now_ms + 300)
    network.close()


def bogus_view_change(key: SigningKey, replica: int, new_view: int) -> ViewChange:
    """Validly signed by ``replica``, but its prepared certificate proves nothing."""
    proposal = Proposal(1, 1_000, key.public_key, ())
    certificate = PreparedCertificate(
        Vote(VoteKind.PRE_PREPARE, 0, 1, proposal.digest, 0, bytes(64)), (), proposal.header
    )
    return signed(ViewChange(new_view, 0, (), (certificate,), replica, bytes(64)), key, CHAIN)


def test_a_view_change_far_ahead_costs_one_signature_until_it_is_used(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN)
    target = network.cores[1]
    assert target is not None
    target.receive(network.key(3), encode_message(bogus_view_change(network.keys[3], 3, 50)), network.now_ms)
    assert target.replica.rejected["invalid"] == 0, "only its signature was checked"
    target.receive(network.key(2), encode_message(bogus_view_change(network.keys[2], 2, 1)), network.now_ms)
    assert target.replica.rejected["invalid"] == 1, "the next view's is checked in full at once"
    sound = signed(ViewChange(50, 0, (), (), 2, bytes(64)), network.keys[2], CHAIN)
    target.receive(
        network.key(2), encode_message(sound), network.now_ms
    )  # f+1 now show view 50: the target moves there
    assert target.replica.view == 50
    assert target.replica.rejected["invalid"] == 2, "used now, replica 3's view change is checked and dropped"
    network.close()


def test_an_idle_network_moves_ledger_time_on_with_empty_blocks_at_the_heartbeat_interval(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(heartbeat_interval_ms=2_000))
    network.run(5_000)
    assert network.heads()[0][0] == 0, "a chain that has not begun stays empty"  # type: ignore[index]
    network.submit_everywhere(sign_transaction(SigningKey.from_seed(b"h" * 32), CHAIN, "load.probe", 0, Probe("h")))
    network.run(500)
    store = network.cores[0].store  # type: ignore[union-attr]
    assert store.head()[0] == 1
    first_ms = ledger_time_ms(store)
    network.run(7_000)  # idle
    height = store.head()[0]
    assert height in (4, 5), f"an empty block every 2 s of 7: {height - 1} of them"
    assert all(not store.block(number).txs for number in range(2, height + 1))  # type: ignore[union-attr]
    assert ledger_time_ms(store) >= first_ms + 6_000
    assert len(set(network.heads())) == 1
    network.close()


def new_view_filling_sequence_1(network: LocalNetwork, empty_time_ms: int) -> NewView:
    """View 1's new-view (from its primary, replica 1) re-proposing what prepared at 2 in view 0
    and filling sequence 1, where nothing prepared, with an empty block dated ``empty_time_ms``."""
    keys, now = network.keys, network.now_ms
    prepared = Proposal(2, now, keys[0].public_key, (), genesis_state(network))

    def vote(kind: VoteKind, view: int, sequence: int, digest: bytes, replica: int) -> Vote:
        return signed(Vote(kind, view, sequence, digest, replica, bytes(64)), keys[replica], CHAIN)

    certificate = PreparedCertificate(
        vote(VoteKind.PRE_PREPARE, 0, 2, prepared.digest, 0),
        tuple(vote(VoteKind.PREPARE, 0, 2, prepared.digest, replica) for replica in (2, 3)),
        prepared.header,
    )
    view_changes = tuple(
        signed(ViewChange(1, 0, (), (certificate,) if replica == 0 else (), replica, bytes(64)), keys[replica], CHAIN)
        for replica in (0, 2, 3)
    )
    headers = (Proposal(1, empty_time_ms, keys[1].public_key, (), genesis_state(network)).header, prepared.header)
    votes = tuple(vote(VoteKind.PRE_PREPARE, 1, header.height, header_digest(header), 1) for header in headers)
    return signed(NewView(1, view_changes, votes, headers, 1, bytes(64)), keys[1], CHAIN)


def test_a_new_view_may_not_date_the_empty_blocks_it_fills_in_the_future(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN)
    target = network.cores[3]
    assert target is not None
    skew_ms = network.config.block_time_skew_max_ms
    future = new_view_filling_sequence_1(network, network.now_ms + skew_ms + 1)
    target.receive(network.key(1), encode_message(future), network.now_ms)
    assert target.replica.rejected["invalid"] == 1 and target.replica.view == 0
    assert "dates its empty block at 1 in the future" in " ".join(target.replica.note_log())
    target.receive(network.key(1), encode_message(new_view_filling_sequence_1(network, network.now_ms)), network.now_ms)
    assert target.replica.view == 1, "the same new-view dated now is entered"
    network.close()
