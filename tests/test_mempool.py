"""The mempool releases each sender's transactions to consensus in nonce order, whatever
order they arrive in, and forgets those a committed block made impossible."""

from __future__ import annotations

import functools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.node.mempool import Mempool

CHAIN = "mempool-test"
PATIENTS = [SigningKey.from_seed(bytes([index + 1]) * 32) for index in range(4)]


@functools.cache
def probe(patient: int, nonce: int, label: str = "p") -> Transaction:
    return sign_transaction(PATIENTS[patient], CHAIN, "load.probe", nonce, Probe(label))


def rejection(pool: Mempool, tx: Transaction, next_committed: int = 0) -> RejectReason:
    with pytest.raises(TxRejected) as raised:
        pool.add(tx, next_committed)
    return raised.value.reason


def test_a_gap_holds_back_later_nonces_until_it_is_filled() -> None:
    pool = Mempool()
    assert pool.add(probe(0, 2), 0) == []
    assert pool.add(probe(0, 1), 0) == []
    assert pool.add(probe(0, 0), 0) == [probe(0, 0), probe(0, 1), probe(0, 2)]
    assert pool.add(probe(0, 3), 0) == [probe(0, 3)]
    assert len(pool) == 4


def test_senders_are_independent() -> None:
    pool = Mempool()
    assert pool.add(probe(0, 1), 0) == []
    assert pool.add(probe(1, 0), 0) == [probe(1, 0)]


def test_refusals_name_their_reason_and_change_nothing() -> None:
    pool = Mempool(size_max=3, ahead_max=10)
    pool.add(probe(0, 5), 5)
    assert rejection(pool, probe(0, 5)) is RejectReason.DUPLICATE
    assert rejection(pool, probe(0, 5, "other")) is RejectReason.NONCE_PENDING
    assert rejection(pool, probe(0, 4)) is RejectReason.STALE_NONCE
    assert rejection(pool, probe(0, 15)) is RejectReason.FUTURE_NONCE
    assert rejection(pool, probe(1, 0), 1) is RejectReason.STALE_NONCE
    pool.add(probe(1, 0), 0)
    pool.add(probe(2, 0), 0)
    assert rejection(pool, probe(1, 1)) is RejectReason.MEMPOOL_FULL
    assert [tx.id for tx in pool.transactions()] == [probe(0, 5).id, probe(1, 0).id, probe(2, 0).id]


def test_a_commit_releases_what_it_unblocked_and_drops_what_it_made_impossible() -> None:
    pool = Mempool()
    chain: dict[bytes, int] = {}
    pool.add(probe(0, 0, "other"), 0)  # released; another node's nonce-0 probe will win
    pool.add(probe(0, 1), 0)
    pool.add(probe(0, 3), 0)
    chain[PATIENTS[0].public_key] = 1
    released = pool.committed([probe(0, 0)], chain.__getitem__)
    assert released.dropped == [probe(0, 0, "other").id]
    assert released.ready == []  # nonce 1 was already released behind the dropped one
    assert probe(0, 0, "other").id not in pool

    chain[PATIENTS[0].public_key] = 3  # nonce 2 came through another node
    released = pool.committed([probe(0, 1), probe(0, 2)], chain.__getitem__)
    assert released.dropped == [] and released.ready == [probe(0, 3)]
    assert [tx.nonce for tx in pool.transactions()] == [3]


@settings(max_examples=60, deadline=None)
@given(st.permutations([(patient, nonce) for patient in range(3) for nonce in range(4)]))
def test_any_arrival_order_releases_each_sender_in_nonce_order(arrivals: list[tuple[int, int]]) -> None:
    pool = Mempool()
    released: list[Transaction] = []
    for patient, nonce in arrivals:
        released.extend(pool.add(probe(patient, nonce), 0))
    for patient in range(3):
        assert [tx.nonce for tx in released if tx.sender == PATIENTS[patient].public_key] == [0, 1, 2, 3]


def test_bytes_are_bounded_in_all_and_per_sender_and_freed_on_commit() -> None:
    big = "x" * 60  # probes of ~200 bytes: the limits below hold two or three of them
    size = len(probe(0, 0, big).encoded)
    pool = Mempool(bytes_max=5 * size, sender_bytes_max=2 * size)
    pool.add(probe(0, 0, big), 0)
    pool.add(probe(0, 1, big), 0)
    assert rejection(pool, probe(0, 2, big)) is RejectReason.MEMPOOL_FULL  # the sender's share is used up
    pool.add(probe(1, 0, big), 0)
    pool.add(probe(1, 1, big), 0)
    pool.add(probe(2, 0, big), 0)
    assert pool.size_bytes == 5 * size
    assert rejection(pool, probe(2, 1, big)) is RejectReason.MEMPOOL_FULL  # the whole pool is full
    pool.committed([probe(0, 0, big), probe(0, 1, big)], lambda sender: 2 if sender == PATIENTS[0].public_key else 0)
    assert pool.size_bytes == 3 * size and len(pool) == 3
    assert pool.add(probe(0, 2, big), 2) == [probe(0, 2, big)]


def test_transactions_stuck_behind_a_missing_nonce_make_room_for_one_consensus_can_order() -> None:
    """A mempool full of transactions whose lower nonce never came (refused while full, or
    sent so on purpose) would refuse everything for good, and consensus, handed nothing,
    would never suspect anyone. A sender's next transaction evicts the highest stuck nonce
    of the sender with most of them; a stuck one is still refused."""
    pool = Mempool(size_max=4)
    for nonce in (1, 2, 3):  # patient 0's nonce 0 never arrives
        assert pool.add(probe(0, nonce), 0) == []
    assert pool.add(probe(2, 0), 0) == [probe(2, 0)]
    assert rejection(pool, probe(1, 5)) is RejectReason.MEMPOOL_FULL  # stuck itself: no eviction
    assert pool.add(probe(1, 0), 0) == [probe(1, 0)]  # releasable: evicts patient 0's nonce 3
    assert probe(0, 3).id not in pool and probe(0, 2).id in pool and len(pool) == 4
    assert pool.add(probe(0, 0), 0) == [probe(0, 0), probe(0, 1)]  # evicts nonce 2, releases the rest
    assert probe(0, 2).id not in pool and len(pool) == 4
    assert rejection(pool, probe(2, 1)) is RejectReason.MEMPOOL_FULL  # nothing stuck is left to evict


def count_stuck(pool: Mempool) -> int:
    """Transactions waiting behind a missing nonce, counted afresh."""
    return sum(1 for sender in pool._senders.values() for nonce in sender.by_nonce if nonce >= sender.next_release)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("add"), st.integers(0, 2), st.integers(0, 3)),
            st.tuples(st.just("commit"), st.integers(0, 2), st.integers(1, 3)),
        ),
        max_size=40,
    )
)
def test_the_count_of_stuck_transactions_follows_every_change(steps: list[tuple[str, int, int]]) -> None:
    """A full mempool asks whether anything is stuck on every refusal, so it keeps a count
    instead of walking every sender; the count must agree with a walk after any adds, commits,
    releases and evictions."""
    pool = Mempool(size_max=3)
    chain_next = [0, 0, 0]
    for kind, patient, number in steps:
        if kind == "add":
            try:
                pool.add(probe(patient, number), chain_next[patient])
            except TxRejected:
                pass
        else:  # a block commits the patient's next ``number`` nonces (whichever transactions)
            committed = [probe(patient, chain_next[patient] + offset) for offset in range(number)]
            chain_next[patient] += number
            pool.committed(committed, lambda key: chain_next[[p.public_key for p in PATIENTS].index(key)])
        assert pool._stuck == count_stuck(pool)
        assert pool._any_stuck() == (count_stuck(pool) > 0)


def naive_evictions(pool: Mempool) -> list[tuple[bytes, int]]:
    """Every stuck transaction as ``(sender, nonce)``, in the order the mempool's first
    algorithm evicts them, walking every transaction held for each: the highest stuck nonce
    of the sender with the most stuck, the first such sender in ``_senders``' order."""
    stuck = {
        key: [nonce for nonce in sender.by_nonce if nonce >= sender.next_release]
        for key, sender in pool._senders.items()
    }
    order = []
    while (key := max(stuck, key=lambda key: len(stuck[key]), default=None)) is not None and stuck[key]:
        nonce = max(stuck[key])
        stuck[key].remove(nonce)
        order.append((key, nonce))
    return order


def live_index(pool: Mempool) -> set[tuple[int, int, bytes]]:
    """The entries of the mempool's most-stuck heap that describe a sender as it is."""
    live = set()
    for stuck, arrival, key in pool._most_stuck:
        sender = pool._senders.get(key)
        if sender is not None and sender.arrival == arrival and sender.stuck == -stuck:
            live.add((stuck, arrival, key))
    return live


def check_senders(pool: Mempool) -> None:
    """What the eviction choice relies on: each sender holds every nonce from its next
    committed one to its next released one (excluded), and otherwise only higher ones; its
    arrivals follow ``_senders``' order; the heap holds a live entry for each sender with
    stuck transactions."""
    arrivals = [sender.arrival for sender in pool._senders.values()]
    assert arrivals == sorted(set(arrivals))
    for sender in pool._senders.values():
        released = range(sender.next_committed, sender.next_release)
        assert all(nonce in sender.by_nonce for nonce in released)
        assert all(nonce in released or nonce > sender.next_release for nonce in sender.by_nonce)
    fresh = {(-sender.stuck, sender.arrival, key) for key, sender in pool._senders.items() if sender.stuck}
    assert live_index(pool) == fresh


STEP = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 3), st.integers(0, 5), st.just(False)),  # often stuck
    st.tuples(st.just("next"), st.integers(0, 3), st.just(0), st.booleans()),  # evicts if the pool is full
    st.tuples(st.just("commit"), st.integers(0, 3), st.integers(1, 3), st.just(False)),
)


@settings(max_examples=500, deadline=None)
@given(st.integers(1, len(PATIENTS)), st.integers(2, 5), st.booleans(), st.lists(STEP, max_size=60))
# A commit leaves the sender one stuck after the heap was compacted to its entry for three.
@example(1, 3, False, [("add", 0, 1, False), ("add", 0, 2, False), ("add", 0, 4, False), ("commit", 0, 1, False)])
# Bytes bound: a big next transaction evicts two stuck ones, from senders tied at two each.
@example(
    3,
    5,
    True,
    [("add", 0, 1, False), ("add", 0, 2, False), ("add", 1, 1, False), ("add", 1, 2, False), ("next", 2, 0, True)],
)
def test_evictions_choose_as_a_walk_over_every_sender_would(
    senders: int, size_max: int, bytes_bound: bool, steps: list[tuple[str, int, int, bool]]
) -> None:
    """The mempool keeps a heap of senders by stuck count instead of walking every sender
    on each eviction; after any adds (releasing, stuck or evicting, by count or by bytes)
    and commits, it must choose the sender and nonce the walk chooses, and the heap must
    agree with one built afresh."""
    big = "x" * 200  # under the bytes bound, a big transaction may need more than one small one evicted
    pool = Mempool(size_max=size_max, bytes_max=2 * len(probe(0, 0, big).encoded) if bytes_bound else 64 << 20)
    chain_next = [0] * len(PATIENTS)
    for kind, drawn, number, large in steps:
        patient = drawn % senders
        if kind in ("add", "next"):
            if kind == "next":
                number = pool.next_free_nonce(PATIENTS[patient].public_key, chain_next[patient]) - chain_next[patient]
            expected = naive_evictions(pool)
            held = {tx.id: (tx.sender, tx.nonce) for tx in pool.transactions()}
            try:
                pool.add(probe(patient, chain_next[patient] + number, big if large else "p"), chain_next[patient])
            except TxRejected:
                pass
            evicted = {held[tx_id] for tx_id in held if tx_id not in pool}
            assert evicted == set(expected[: len(evicted)])
        else:  # a block commits the patient's next ``number`` nonces (whichever transactions)
            committed = [probe(patient, chain_next[patient] + offset) for offset in range(number)]
            chain_next[patient] += number
            pool.committed(committed, lambda key: chain_next[[p.public_key for p in PATIENTS].index(key)])
        check_senders(pool)
        assert pool._to_evict() == next(iter(naive_evictions(pool)), None)
        assert pool._stuck == count_stuck(pool)
