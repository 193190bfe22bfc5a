"""Our clients' transactions are gossiped again, once an interval, until they stop waiting."""

from __future__ import annotations

from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.node.rebroadcast import Rebroadcast

SENDER = SigningKey.from_seed(b"\x07" * 32)


def tx(nonce: int) -> Transaction:
    return sign_transaction(SENDER, "chain", "load.probe", nonce, Probe("r"))


def test_a_waiting_transaction_is_resent_with_a_doubling_wait_and_forgotten_when_it_stops_waiting() -> None:
    rebroadcast = Rebroadcast(interval_ms=1_000)
    first, second = tx(0), tx(1)
    rebroadcast.sent(first, 0)
    rebroadcast.sent(second, 600)
    waiting = {first.id, second.id}
    assert rebroadcast.due(999, waiting.__contains__) == []
    assert rebroadcast.due(1_000, waiting.__contains__) == [first]
    assert rebroadcast.due(1_600, waiting.__contains__) == [second]
    assert rebroadcast.due(2_999, waiting.__contains__) == []  # first waits 2 s now
    assert rebroadcast.due(3_000, waiting.__contains__) == [first]
    waiting.discard(second.id)  # committed
    assert rebroadcast.due(7_000, waiting.__contains__) == [first]  # then 4 s
    assert len(rebroadcast) == 1 and rebroadcast.resent == 4
    waiting.clear()
    assert rebroadcast.due(60_000, waiting.__contains__) == [] and len(rebroadcast) == 0


def test_one_round_resends_a_bounded_number_oldest_first_and_tracking_is_bounded() -> None:
    rebroadcast = Rebroadcast(interval_ms=10, round_max=2, tracked_max=3)
    txs = [tx(nonce) for nonce in range(4)]
    for position, item in enumerate(txs):
        rebroadcast.sent(item, position)
    assert len(rebroadcast) == 3  # the oldest was dropped
    assert rebroadcast.due(100, lambda _: True) == txs[1:3]
    assert rebroadcast.due(100, lambda _: True) == txs[3:]
