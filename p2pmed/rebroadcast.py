"""Gossip again what our own clients submitted and is still waiting to commit.

Gossip is best effort: a batch published before the peers' subscriptions reached
this node, or lost with a connection, reaches nobody. Then the transaction sits
in this node's mempool alone; the next nonces of its sender, which did arrive
elsewhere, wait for it there, and nothing else will ever tell the other nodes
about it. So the node that took a transaction from its client publishes it again
every ``interval_ms`` until it commits or leaves the mempool, each time as a new
gossip message (message ids are publisher and sequence number, not content).
Receivers that already hold it drop the copy at their mempool's duplicate check,
with no second signature check.
"""

from __future__ import annotations

from collections.abc import Callable

from p2pmed.ledger.tx import Transaction

__all__ = ["Rebroadcast"]

INTERVAL_MS = 1_000
TRACKED_MAX = 100_000


class Rebroadcast:
    def __init__(self, interval_ms: int = INTERVAL_MS, tracked_max: int = TRACKED_MAX) -> None:
        self.interval_ms = interval_ms
        self.tracked_max = tracked_max
        self._last_sent: dict[bytes, tuple[Transaction, int]] = {}
        self.resent = 0

    def __len__(self) -> int:
        return len(self._last_sent)

    def sent(self, tx: Transaction, now_ms: int) -> None:
        """``tx`` from our own client was just gossiped."""
        self._last_sent[tx.id] = (tx, now_ms)
        if len(self._last_sent) > self.tracked_max:
            del self._last_sent[next(iter(self._last_sent))]

    def due(self, now_ms: int, waiting: Callable[[bytes], bool]) -> list[Transaction]:
        """What to gossip again now; forgets what no longer ``waiting`` (committed or dropped)."""
        for tx_id in [tx_id for tx_id in self._last_sent if not waiting(tx_id)]:
            del self._last_sent[tx_id]
        again = [tx for tx, sent_ms in self._last_sent.values() if now_ms - sent_ms >= self.interval_ms]
        for tx in again:
            del self._last_sent[tx.id]  # re-inserted last: the dict stays in send order
            self._last_sent[tx.id] = (tx, now_ms)
        self.resent += len(again)
        return again
