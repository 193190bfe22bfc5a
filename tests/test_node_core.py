"""Four validators' NodeCores (real Ed25519, real SQLite stores, the ledger rules)
wired by an in-memory network: what the daemon will run, minus sockets and clocks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from p2pmed import codec
from p2pmed.consensus import ViewPhase
from p2pmed.consensus.certificates import InvalidMessage, Validators
from p2pmed.consensus.messages import (
    FETCH_BLOCKS_MAX,
    BlockWithCertificate,
    CommitCertificate,
    PrePrepare,
    Vote,
    VoteKind,
    blocks_answer,
    decode_message,
    encode_message,
    proposal_digest,
)
from p2pmed.consensus.replica import ReplicaConfig
from p2pmed.crypto import EncryptionPrivateKey, SigningKey
from p2pmed.ledger.block import StateCommitment, make_block
from p2pmed.ledger.contracts.identity import PersonRegister
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.node.core import NodeCore, StorageFailed
from p2pmed.testing.local_network import LocalNetwork
from signing import signed

CHAIN = "node-core-test"


def probe(sender: SigningKey, nonce: int, label: str = "p") -> Transaction:
    return sign_transaction(sender, CHAIN, "load.probe", nonce, Probe(label))


@pytest.fixture
def network(tmp_path: Path):  # type: ignore[no-untyped-def]
    net = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(checkpoint_interval=4, watermark_window=16))
    yield net
    net.close()


def test_four_nodes_commit_transactions_into_identical_stores(network: LocalNetwork) -> None:
    sender = SigningKey.from_seed(b"p" * 32)
    txs = [probe(sender, 0, "first"), probe(sender, 1, "x" * 65), probe(sender, 2, "third")]  # the second is refused
    for tx in txs:
        network.submit_everywhere(tx)
    network.run(1_000)

    heads = network.heads()
    assert len(set(heads)) == 1 and heads[0] is not None and heads[0][0] >= 1
    stores = [core.store for core in network.cores if core is not None]
    assert len(stores) == 4
    stored = stores[0].transactions_by_sender(sender.public_key)
    assert [(item.tx, item.reject_reason) for item in stored] == [
        (txs[0], None),
        (txs[1], RejectReason.INVALID),
        (txs[2], None),
    ]
    state = list(stores[0].state_items(""))
    for store in stores[1:]:
        assert store.transactions_by_sender(sender.public_key) == stored
        assert list(store.state_items("")) == state


def test_a_stored_commit_certificate_lets_an_outsider_verify_each_block(network: LocalNetwork) -> None:
    network.submit_everywhere(probe(SigningKey.from_seed(b"q" * 32), 0))
    network.run(1_000)
    core = network.cores[2]
    assert core is not None
    height, _ = core.store.head()
    outsider = Validators(CHAIN, network.validators.keys, network.validators.verifier)
    previous = bytes(32)
    for number in range(1, height + 1):
        block, raw = core.store.block(number), core.store.certificate(number)
        assert block is not None and raw is not None
        certificate = codec.decode(CommitCertificate, raw, codec.BLOCK_SIZE_MAX)
        outsider.check_committed_block(block, certificate, previous)
        previous = block.hash


def test_a_crashed_node_restarts_from_its_store_and_catches_up(network: LocalNetwork) -> None:
    sender = SigningKey.from_seed(b"r" * 32)
    network.submit_everywhere(probe(sender, 0))
    network.run(500)
    network.crash(3)
    for nonce in range(1, 8):
        network.submit_everywhere(probe(sender, nonce))
        network.run(300)
    network.restart(3)
    network.run(2_000)

    heads = network.heads()
    assert len(heads) == 4 and len(set(heads)) == 1
    restarted = network.cores[3]
    assert restarted is not None and len(restarted.store.transactions_by_sender(sender.public_key)) == 8


def test_a_node_that_missed_everything_catches_up_on_an_idle_network(network: LocalNetwork) -> None:
    # Node 3 comes back with an empty store after the others went quiet: no vote, checkpoint
    # or pending transaction tells it it is behind; only its own idle probe can.
    network.crash(3)
    sender = SigningKey.from_seed(b"i" * 32)
    for nonce in range(3):
        network.submit_everywhere(probe(sender, nonce))
    network.run(1_000)
    network.restart(3)
    network.run(network.config.head_probe_idle_ms // 2)
    restarted = network.cores[3]
    assert restarted is not None and restarted.replica.last_executed == 0

    network.run(network.config.head_probe_idle_ms + 2 * network.config.retransmit_interval_ms)
    heads = network.heads()
    assert len(set(heads)) == 1 and heads[0] is not None and heads[0][0] >= 1


def test_a_transaction_with_a_bad_signature_is_refused_on_submit(network: LocalNetwork) -> None:
    tx = probe(SigningKey.from_seed(b"t" * 32), 0)
    forged = Transaction(tx.type, tx.chain_id, tx.sender, tx.nonce, tx.body, bytes(64))
    core = network.cores[1]
    assert core is not None
    with pytest.raises(TxRejected) as raised:
        core.submit(forged, network.now_ms)
    assert raised.value.reason is RejectReason.BAD_SIGNATURE
    assert core.replica.pending_count == 0


def test_a_committed_transaction_submitted_again_is_refused_even_after_a_restart(network: LocalNetwork) -> None:
    tx = probe(SigningKey.from_seed(b"v" * 32), 0)
    network.submit_everywhere(tx)
    network.run(1_000)
    network.crash(0)
    network.restart(0)
    core = network.cores[0]
    assert core is not None and tx.id in core.store.recent_tx_ids(10)
    with pytest.raises(TxRejected) as raised:
        core.submit(tx, network.now_ms)
    assert raised.value.reason is RejectReason.DUPLICATE
    assert core.replica.pending_count == 0


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff" * 64, b"\xa1\x64kind\x65bogus", bytes(range(256)) * 4, b"\xa2" + b"\x00" * (1 << 16)],
    ids=["empty", "garbage", "unknown-kind", "binary", "truncated-map"],
)
def test_garbage_from_a_peer_is_counted_and_changes_nothing(network: LocalNetwork, data: bytes) -> None:
    core = network.cores[2]
    assert core is not None
    before = (core.store.head(), dict(core.store.consensus_items()))
    assert core.receive(network.key(1), data, network.now_ms) == []
    assert core.replica.rejected["malformed"] == 1
    assert (core.store.head(), dict(core.store.consensus_items())) == before
    network.submit_everywhere(probe(SigningKey.from_seed(b"x" * 32), 0))
    network.run(1_000)
    assert core.store.head()[0] >= 1


def test_messages_received_together_are_persisted_in_one_write_before_any_reply(network: LocalNetwork) -> None:
    backup = network.cores[1]
    assert backup is not None
    writes: list[dict[str, bytes | None]] = []
    original_put = backup.store.consensus_put

    def put(records: dict[str, bytes | None]) -> None:
        writes.append(dict(records))
        original_put(records)

    backup.store.consensus_put = put  # type: ignore[method-assign]
    sender = SigningKey.from_seed(b"g" * 32)
    for nonce in range(3):
        network.submit_everywhere(probe(sender, nonce))
    held: list[tuple[int, bytes]] = []  # node 1's mail, kept from it while the others commit
    for _ in range(40):
        while network.in_flight:
            source, destination, data = network.in_flight.popleft()
            if destination == 1:
                held.append((source, data))
            else:
                assert network.cores[destination] is not None
                network.deliver(source, destination, data)
        network.now_ms += 5
        for index in (0, 2, 3):
            network.tick(index)
    assert len(held) >= 3 and writes == []
    replies = backup.receive_many([(network.key(source), data) for source, data in held], network.now_ms)
    assert len(writes) == 1, "one write covers every vote the held messages produced"
    assert replies and any(key.startswith("slot/") for key in writes[0])
    network.send_from(1, replies)
    network.run(1_000)
    heads = network.heads()
    assert len(set(heads)) == 1 and heads[0] is not None and heads[0][0] >= 1


def test_transactions_arriving_in_reverse_nonce_order_all_commit(network: LocalNetwork) -> None:
    sender = SigningKey.from_seed(b"z" * 32)
    txs = [probe(sender, nonce) for nonce in range(5)]
    for tx in reversed(txs):
        network.submit_everywhere(tx)
        network.run(50)
    network.run(1_000)
    core = network.cores[1]
    assert core is not None
    stored = core.store.transactions_by_sender(sender.public_key)
    assert [(item.tx.nonce, item.reject_reason) for item in stored] == [(nonce, None) for nonce in range(5)]


def test_a_transaction_that_lost_its_nonce_to_another_is_forgotten_without_a_view_change(
    network: LocalNetwork,
) -> None:
    sender = SigningKey.from_seed(b"k" * 32)
    winner, loser = probe(sender, 0, "winner"), probe(sender, 0, "loser")
    primary, backup = network.cores[0], network.cores[3]
    assert primary is not None and backup is not None
    for index, core in enumerate(network.cores):
        assert core is not None
        network.send_from(index, core.submit(loser if core is backup else winner, network.now_ms))
    network.run(5_000)  # longer than the request timeout

    assert backup.store.transaction(winner.id) is not None and backup.store.transaction(loser.id) is None
    assert backup.replica.pending_count == 0 and loser.id not in backup.mempool
    assert all(core is not None and core.replica.view == 0 for core in network.cores)


def test_a_restarted_node_says_it_is_catching_up_until_it_has_every_block(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(batch_size_max=1))
    sender = SigningKey.from_seed(b"u" * 32)
    for nonce in range(FETCH_BLOCKS_MAX + 6):  # one block each; node 3 misses more than one fetch carries
        if nonce == 1:
            network.crash(3)
        network.submit_everywhere(probe(sender, nonce))
        network.run(100)
    target, _ = network.heads()[0] or (0, b"")
    assert target > FETCH_BLOCKS_MAX

    network.restart(3)
    restarted = network.cores[3]
    assert restarted is not None
    progress = []
    while network.deliver_next():
        progress.append((restarted.replica.last_executed, restarted.replica.catching_up_to))
    network.run(2_000)

    # The first fetch ended short of the head, and it knew there was more to fetch.
    assert any(executed == 1 + FETCH_BLOCKS_MAX and (ahead or 0) > executed for executed, ahead in progress)
    assert restarted.replica.last_executed == target and restarted.replica.catching_up_to is None
    network.close()


def test_a_node_catching_up_does_not_suspect_the_primary_for_transactions_it_has_yet_to_fetch(tmp_path: Path) -> None:
    timeout_ms = 1_000
    network = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(batch_size_max=1, request_timeout_ms=timeout_ms))
    sender = SigningKey.from_seed(b"w" * 32)
    for nonce in range(6 * FETCH_BLOCKS_MAX):  # one block each: six fetch rounds behind
        if nonce == 1:
            network.crash(3)
        network.submit_everywhere(probe(sender, nonce))
        network.run(20)
    network.restart(3)
    restarted = network.cores[3]
    assert restarted is not None
    late = probe(SigningKey.from_seed(b"x" * 32), 0)  # reaches it while it is behind; nobody else has it
    restarted.submit(late, network.now_ms)
    # Each fetch round trip takes 0.8 s here, so catching up takes far longer than the request timeout.
    height, _ = network.heads()[0] or (0, b"")
    for _ in range(20):
        while network.deliver_next():
            pass
        if restarted.replica.last_executed == height:
            break
        assert restarted.replica.view_changes_started == 0, "suspected the primary while fetching"
        network.now_ms += 800
        network.tick(3)
    assert restarted.replica.last_executed == height > 5 * FETCH_BLOCKS_MAX
    # Caught up, the transaction it alone holds still waits: now the primary is suspected.
    for later_ms in (2 * timeout_ms, 4 * timeout_ms):
        restarted.tick(network.now_ms + later_ms)
    assert restarted.replica.view_changes_started == 1
    network.close()


def test_the_request_timeout_doubles_with_each_view_change_until_a_block_executes(tmp_path: Path) -> None:
    base_ms = 1_000
    network = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(request_timeout_ms=base_ms))
    network.crash(0)  # the primary of view 0
    network.submit_everywhere(probe(SigningKey.from_seed(b"y" * 32), 0))
    backup = network.cores[1]
    assert backup is not None and backup.replica.request_timeout_ms == base_ms
    seen = set()
    for _ in range(400):  # 2 s in 5 ms steps: the timeout fires, the view changes, the block commits
        network.run(5)
        seen.add((backup.replica.view, backup.replica.view_phase, backup.replica.request_timeout_ms))
    assert (1, ViewPhase.CHANGING, 2 * base_ms) in seen, "changing view: the next primary gets twice as long"
    assert backup.store.head()[0] == 1 and backup.replica.request_timeout_ms == base_ms, (
        "a block executed: back to normal"
    )
    network.close()


def hop(network: LocalNetwork, ms: int) -> None:
    """Deliver only what is in flight now (each message takes one hop of ``ms``), then run the timers."""
    batch = list(network.in_flight)
    network.in_flight.clear()
    for source, destination, data in batch:
        network.deliver(source, destination, data)
    network.now_ms += ms
    for index, core in enumerate(network.cores):
        if core is not None and core.next_deadline_ms() <= network.now_ms:
            network.tick(index)


def slow_network(tmp_path: Path) -> LocalNetwork:
    # One transaction per block, one block at a time: at 100 ms a hop, a block every ~300 ms,
    # longer than half the request timeout (how long a backup's probe for missed blocks
    # waits); 20 transactions take ~6 s, over ten request timeouts.
    return LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(batch_size_max=1, pipeline_max=1, request_timeout_ms=400))


def test_a_primary_working_through_a_backlog_in_order_is_not_suspected(tmp_path: Path) -> None:
    network = slow_network(tmp_path)
    txs = [probe(SigningKey.from_seed(bytes([index]) * 32), 0) for index in range(20)]
    for tx in txs:
        network.submit_everywhere(tx)
    start_ms = network.now_ms
    for _ in range(100):
        hop(network, 100)
    cores = [core for core in network.cores if core is not None]
    assert all(core.store.transaction(tx.id) is not None for core in cores for tx in txs)
    assert network.now_ms - start_ms > 10 * network.config.request_timeout_ms
    assert [core.replica.view_changes_started for core in cores] == [0, 0, 0, 0]
    network.close()


def test_the_backlog_of_a_crashed_primary_is_served_after_one_view_change(tmp_path: Path) -> None:
    """The next primary inherits a backlog already older than the request timeout; working
    through it in order, it is not suspected in turn (no cascade of view changes)."""
    network = slow_network(tmp_path)
    network.crash(0)
    txs = [probe(SigningKey.from_seed(bytes([index]) * 32), 0) for index in range(20)]
    for tx in txs:
        network.submit_everywhere(tx)
    for _ in range(150):
        hop(network, 100)
    cores = [core for core in network.cores if core is not None]
    assert all(core.store.transaction(tx.id) is not None for core in cores for tx in txs)
    assert [core.replica.view for core in cores] == [1, 1, 1]
    network.close()


def test_a_network_slower_than_the_request_timeout_stops_changing_view_once_the_timeout_fits(
    tmp_path: Path,
) -> None:
    """Blocks take longer than the configured request timeout (an overloaded network, a slow
    link): after view changes double the timeout past the time a block takes, a block that
    executes late must not put it back, or every new primary is voted out after one block."""
    network = LocalNetwork(
        tmp_path, CHAIN, config=ReplicaConfig(batch_size_max=1, pipeline_max=1, request_timeout_ms=150)
    )
    txs = [probe(SigningKey.from_seed(bytes([index]) * 32), 0) for index in range(30)]
    for tx in txs:
        network.submit_everywhere(tx)
    for _ in range(400):  # a hop of 100 ms: a block every ~300 ms or more
        hop(network, 100)
    cores = [core for core in network.cores if core is not None]
    assert all(core.store.transaction(tx.id) is not None for core in cores for tx in txs)
    assert max(core.replica.view_changes_started for core in cores) <= 3
    network.close()


def test_a_primary_that_orders_newer_transactions_while_one_starves_is_replaced(tmp_path: Path) -> None:
    network = slow_network(tmp_path)
    censored = probe(SigningKey.from_seed(b"c" * 32), 0)
    primary = network.cores[0]
    assert primary is not None
    honest_unproposed = primary.replica._unproposed
    primary.replica._unproposed = lambda: [tx for tx in honest_unproposed() if tx.id != censored.id]  # type: ignore[method-assign]
    network.submit_everywhere(censored)
    for index in range(40):  # a fresh transaction every 200 ms: the primary is never idle
        network.submit_everywhere(probe(SigningKey.from_seed(bytes([index]) * 32), 0))
        hop(network, 100)
        hop(network, 100)
    backups = [core for core in network.cores[1:] if core is not None]
    assert all(core.replica.view >= 1 for core in backups)
    assert all(core.store.transaction(censored.id) is not None for core in backups)
    network.close()


def test_an_idle_primary_proposes_a_gossip_batch_as_one_block(network: LocalNetwork) -> None:
    """The primary proposes as soon as its pipeline has room (no batch delay); transactions
    that arrived together go into one block, not the first alone and the rest a round later."""
    primary = network.cores[0]
    assert primary is not None
    batch = [probe(SigningKey.from_seed(bytes([index + 100]) * 32), 0) for index in range(5)]
    outgoing, refused = primary.submit_many([*batch, batch[0]], network.now_ms)
    assert [error.reason for error in refused] == [RejectReason.DUPLICATE]
    proposals = {decode_message(data) for _, data in outgoing}
    assert [[tx.id for tx in p.proposal.txs] for p in proposals if isinstance(p, PrePrepare)] == [
        [tx.id for tx in batch]
    ]


def test_a_full_mempool_refuses_before_checking_the_signature(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN, config=ReplicaConfig(pending_max=2))
    core = network.cores[1]
    assert core is not None
    sender = SigningKey.from_seed(b"f" * 32)
    for nonce in (5, 6):  # held: nonces 0..4 are missing, so nothing drains
        core.submit(probe(sender, nonce), network.now_ms)
    good = probe(sender, 7)
    forged = Transaction(good.type, good.chain_id, good.sender, good.nonce, good.body, bytes(64))
    for tx in (good, forged):
        with pytest.raises(TxRejected) as raised:
            core.submit(tx, network.now_ms)
        assert raised.value.reason is RejectReason.MEMPOOL_FULL  # the forgery was not even verified
    with pytest.raises(TxRejected) as raised:
        core.submit(probe(sender, 5), network.now_ms)
    assert raised.value.reason is RejectReason.DUPLICATE  # one already waiting is still recognised
    network.close()


def test_a_network_of_one_validator_commits_and_idles_without_probing_anyone(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN, n=1)
    network.submit_everywhere(probe(SigningKey.from_seed(b"o" * 32), 0))
    network.run(3 * network.config.head_probe_idle_ms)  # long idle: the head probe comes due
    heads = network.heads()
    assert heads[0] is not None and heads[0][0] >= 1 and not network.in_flight
    network.close()


def test_only_registered_senders_reach_the_mempool_unless_a_test_network_opens_it_to_probes(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN, probes_from_anyone=False)
    core = network.cores[1]
    assert core is not None
    outsider = SigningKey.from_seed(b"o" * 32)
    forged = Transaction("load.probe", CHAIN, outsider.public_key, 0, {"label": "p"}, bytes(64))
    for tx in (probe(outsider, 0), forged):  # the forged one is refused before its signature is checked
        with pytest.raises(TxRejected) as raised:
            core.submit(tx, network.now_ms)
        assert raised.value.reason is RejectReason.UNKNOWN_SENDER
    assert core.replica.pending_count == 0 and len(core.mempool) == 0

    site = network.keys[0]  # a validator, and the organisation in force it runs for
    register = sign_transaction(
        site,
        CHAIN,
        "identity.person.register",
        0,
        PersonRegister(outsider.public_key, "clinician", EncryptionPrivateKey.generate().public_key),
    )
    network.submit_everywhere(register)
    network.run(1_000)
    network.submit_everywhere(probe(outsider, 0))  # registered now: admitted everywhere, and it commits
    network.run(1_000)
    assert core.store.transaction(probe(outsider, 0).id) is not None
    network.close()

    (tmp_path / "open").mkdir()
    opened = LocalNetwork(tmp_path / "open", CHAIN)
    assert opened.cores[1] is not None and opened.cores[1].submit(probe(outsider, 0), opened.now_ms) is not None
    assert opened.cores[1].replica.pending_count == 1
    opened.close()


def certified_block(network: LocalNetwork, core: NodeCore, state: StateCommitment) -> BlockWithCertificate:
    """The block after ``core``'s head, empty, committing to ``state``, with the genesis quorum's votes."""
    height, head_hash = core.store.head()
    block = make_block(CHAIN, height + 1, head_hash, (), network.key(0), network.now_ms, state)
    digest = proposal_digest(block.header)
    votes = tuple(
        signed(Vote(VoteKind.COMMIT, 0, block.height, digest, replica, bytes(64)), network.keys[replica], CHAIN)
        for replica in range(3)
    )
    return BlockWithCertificate(block, CommitCertificate(votes))


def genesis_state(core: NodeCore) -> StateCommitment:
    genesis = core.store.commitment(0)
    assert genesis is not None
    return genesis


def forged_genesis_state(core: NodeCore) -> StateCommitment:
    return dataclasses.replace(genesis_state(core), state_root=bytes(32))


def test_an_outsider_refuses_a_certified_block_committing_to_another_state(tmp_path: Path) -> None:
    network = LocalNetwork(tmp_path, CHAIN, joiners=1)
    outsider = network.cores[4]
    assert outsider is not None and outsider.replica is None
    with pytest.raises(InvalidMessage, match="other than this node's: more than f of that set are faulty"):
        outsider.apply_synced(certified_block(network, outsider, forged_genesis_state(outsider)))
    assert outsider.store.head()[0] == 0
    outsider.apply_synced(certified_block(network, outsider, genesis_state(outsider)))
    assert outsider.store.head()[0] == 1
    network.close()


def test_a_validator_stops_on_a_certified_block_committing_to_another_state(network: LocalNetwork) -> None:
    core = network.cores[1]
    assert core is not None
    answer = blocks_answer([certified_block(network, core, forged_genesis_state(core))])
    with pytest.raises(StorageFailed, match="other than this node's"):
        core.receive(network.key(0), encode_message(answer), network.now_ms)
    assert core.store.head()[0] == 0
    with pytest.raises(StorageFailed):
        core.tick(network.now_ms)
