"""Gossip again what our own clients submitted and is still waiting to commit.

Gossip is best effort: a batch published before this node knew its peers were
subscribed, or lost with a connection, reaches nobody. Then the transaction sits
in this node's mempool alone; the next nonces of its sender, which did arrive
elsewhere, wait for it there, and nothing else will ever tell the other nodes
about it. So the node that took a transaction from its client publishes it again
until it commits or leaves the mempool, each time as a new gossip message
(message ids are publisher and sequence number, not content). Receivers that
already hold it drop the copy at their mempool's duplicate check, with no second
signature check.

Under overload most waiting transactions are simply queued, not lost, and
resending them all would add to the load that delays them: each transaction waits
twice as long before each resend (``interval_ms``, then 2x, 4x, up to
``BACKOFF_MAX_MS``), and one round resends at most ``ROUND_MAX``, oldest first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from p2pmed.ledger.tx import Transaction

__all__ = ["Rebroadcast"]

INTERVAL_MS = 1_000
BACKOFF_MAX_MS = 32_000
ROUND_MAX = 100
TRACKED_MAX = 100_000


class Rebroadcast:
    def __init__(
        self, interval_ms: int = INTERVAL_MS, round_max: int = ROUND_MAX, tracked_max: int = TRACKED_MAX
    ) -> None:
        self.interval_ms = interval_ms
        self.round_max = round_max
        self.tracked_max = tracked_max
        self._waiting: dict[bytes, _Waiting] = {}  # in the order they were last sent
        self.resent = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def sent(self, tx: Transaction, now_ms: int) -> None:
        """``tx`` from our own client was just gossiped."""
        self._waiting[tx.id] = _Waiting(tx, now_ms + self.interval_ms, self.interval_ms)
        if len(self._waiting) > self.tracked_max:
            del self._waiting[next(iter(self._waiting))]

    def due(self, now_ms: int, waiting: Callable[[bytes], bool]) -> list[Transaction]:
        """What to gossip again now; forgets what no longer ``waiting`` (committed or dropped)."""
        for tx_id in [tx_id for tx_id in self._waiting if not waiting(tx_id)]:
            del self._waiting[tx_id]
        again = [entry for entry in self._waiting.values() if entry.due_ms <= now_ms][: self.round_max]
        for entry in again:
            del self._waiting[entry.tx.id]  # re-inserted last: the dict stays in send order
            backoff_ms = min(2 * entry.backoff_ms, BACKOFF_MAX_MS)
            self._waiting[entry.tx.id] = _Waiting(entry.tx, now_ms + backoff_ms, backoff_ms)
        self.resent += len(again)
        return [entry.tx for entry in again]


@dataclass(frozen=True)
class _Waiting:
    tx: Transaction
    due_ms: int
    backoff_ms: int
    """How long it waited before this resend is due; doubles with each resend."""
