"""Transactions waiting to be ordered, released to consensus in per-sender nonce order.

The ledger accepts a sender's transactions only in nonce order (0, 1, 2...), and
gossip delivers them in any order. If consensus were handed nonce 5 before
nonce 4, the block would refuse 5 as ``future-nonce`` and the sender would have
to sign it again. So the mempool holds each sender's transactions by nonce and
*releases* one to consensus only when every lower nonce is committed or already
released: the released ones of a sender always form one run starting at its
next committed nonce.

When a block commits, each sender it touched has a new next nonce; whatever the
mempool still holds below it lost the race to another transaction with the same
nonce (or was committed) and is dropped, and the run after it is released. The
caller must tell consensus to forget dropped transactions that were released,
or backups would wait for them forever and suspect the primary.

Bounded: ``size_max`` transactions and ``bytes_max`` bytes in all, at most
``sender_bytes_max`` bytes and ``ahead_max`` nonces past its next committed one per
sender, so one sender cannot fill it (1 MiB transactions, 5,000 of them, would
otherwise be 5 GiB of memory).

A full mempool still takes a transaction that consensus can order at once (its
sender's next nonce): it makes room by evicting transactions that wait behind a
missing nonce, the highest nonce of the sender with the most of them first. Without
that, transactions whose lower nonce never arrived (refused while the mempool was
full, or sent that way on purpose by any registered sender, up to ``ahead_max`` each)
would fill it for good: nothing released, so consensus idles without suspecting
anyone, and every new transaction is refused as mempool-full (``p2pmed bench`` saw
a network stop committing so after an overload). Of senders with as many stuck, the
one that has waited here longest goes first (the first in ``_senders``' order: a sender
that left, its transactions all gone, and came back counts from its return). This runs
on the event loop, under overload or attack, so choosing the sender costs O(log senders)
amortised, and its highest nonce a look at that sender's nonces only (at most
``ahead_max``), not a walk over every transaction held.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.tx import Transaction

__all__ = ["Mempool", "Released"]


@dataclass
class Released:
    """What changed for consensus: transactions to hand it, ids it must forget."""

    ready: list[Transaction] = field(default_factory=list)
    dropped: list[bytes] = field(default_factory=list)


@dataclass
class _Sender:
    arrival: int
    """Its place in ``Mempool._senders``' order, which breaks ties between senders to evict from."""
    next_committed: int
    next_release: int
    by_nonce: dict[int, Transaction] = field(default_factory=dict)
    size_bytes: int = 0

    @property
    def stuck(self) -> int:
        """Its transactions waiting behind a missing nonce (never handed to consensus): those
        above ``next_release``, as every nonce from ``next_committed`` up to it (excluded) is
        held and released. So while any is stuck, its highest nonce held is stuck."""
        return len(self.by_nonce) - (self.next_release - self.next_committed)


class Mempool:
    def __init__(
        self,
        size_max: int = 100_000,
        ahead_max: int = 1_000,
        bytes_max: int = 64 << 20,
        sender_bytes_max: int = 8 << 20,
    ) -> None:
        self.size_max, self.ahead_max = size_max, ahead_max
        self.bytes_max, self.sender_bytes_max = bytes_max, sender_bytes_max
        self.size_bytes = 0
        self._by_id: dict[bytes, Transaction] = {}
        self._senders: dict[bytes, _Sender] = {}
        self._arrivals = 0
        self._stuck = 0
        """Transactions waiting behind a missing nonce, kept as senders change: a full mempool
        asks on every refusal, which must stay cheap under overload (a walk over every sender
        cost 0.2 ms a refusal at 5,000 waiting, more than a signature check)."""
        self._most_stuck: list[tuple[int, int, bytes]] = []
        """A heap of ``(-stuck, arrival, key)``, pushed whenever a sender's stuck count changes,
        so its top live entry names the sender to evict from. An entry is live while its sender
        is in ``_senders`` with that arrival and count; the others are dropped when they reach
        the top, or all at once when the heap holds more than two entries a sender."""

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._by_id

    def check_room(self, tx: Transaction) -> None:
        """Raise ``TxRejected`` (mempool-full) unless ``tx`` is waiting or there is room for it,
        in all and for its sender; cheap, so a caller can refuse before any costlier check.
        A transaction that may be its sender's next (``add`` decides) finds room while
        transactions wait behind a missing nonce."""
        if tx.id in self._by_id:
            return
        sender = self._senders.get(tx.sender)
        size = len(tx.encoded)
        full = len(self._by_id) >= self.size_max or self.size_bytes + size > self.bytes_max
        if full and not ((sender is None or tx.nonce == sender.next_release) and self._any_stuck()):
            raise TxRejected(
                RejectReason.MEMPOOL_FULL,
                f"{len(self._by_id)} transactions ({self.size_bytes} bytes) are waiting; try again later",
            )
        if sender is not None and sender.size_bytes + size > self.sender_bytes_max:
            raise TxRejected(
                RejectReason.MEMPOOL_FULL,
                f"this sender has {sender.size_bytes} bytes waiting (at most {self.sender_bytes_max}); "
                "wait for them to commit",
            )

    def get(self, tx_id: bytes) -> Transaction | None:
        return self._by_id.get(tx_id)

    def transactions(self) -> list[Transaction]:
        """Every waiting transaction, in arrival order."""
        return list(self._by_id.values())

    def released(self) -> list[Transaction]:
        """The waiting transactions already handed to consensus, in arrival order (for a
        replica that starts over, at a change of the validator set)."""
        return [tx for tx in self._by_id.values() if tx.nonce < self._senders[tx.sender].next_release]

    def next_free_nonce(self, sender: bytes, next_committed: int) -> int:
        """The nonce a new transaction from ``sender`` should take: the first one neither
        committed (``next_committed`` is the chain's next) nor waiting here."""
        waiting = self._senders.get(sender)
        nonce = next_committed
        while waiting is not None and nonce in waiting.by_nonce:
            nonce += 1
        return nonce

    def add(self, tx: Transaction, next_committed: int) -> list[Transaction]:
        """Hold ``tx`` (``next_committed`` is its sender's next nonce on the chain);
        returns the transactions this releases. Raises ``TxRejected`` if it cannot wait."""
        if tx.id in self._by_id:
            raise TxRejected(RejectReason.DUPLICATE, f"transaction {tx.id.hex()[:16]} is already waiting")
        sender = self._senders.get(tx.sender)
        if sender is not None:
            next_committed = sender.next_committed
        if tx.nonce < next_committed:
            raise TxRejected(RejectReason.STALE_NONCE, f"nonce {tx.nonce} already used; next is {next_committed}")
        if tx.nonce >= next_committed + self.ahead_max:
            raise TxRejected(
                RejectReason.FUTURE_NONCE,
                f"nonce {tx.nonce} is more than {self.ahead_max} ahead of the next one, {next_committed}",
            )
        if sender is not None and tx.nonce in sender.by_nonce:
            raise TxRejected(
                RejectReason.NONCE_PENDING, f"another transaction with nonce {tx.nonce} from this sender is waiting"
            )
        self.check_room(tx)
        if tx.nonce == (next_committed if sender is None else sender.next_release):
            self._evict_stuck(len(tx.encoded))
        if len(self._by_id) >= self.size_max or self.size_bytes + len(tx.encoded) > self.bytes_max:
            raise TxRejected(RejectReason.MEMPOOL_FULL, f"{len(self._by_id)} transactions are waiting; try again later")
        if sender is None:
            sender = self._senders[tx.sender] = _Sender(self._arrivals, next_committed, next_committed)
            self._arrivals += 1
        stuck_before = sender.stuck
        sender.by_nonce[tx.nonce] = tx
        sender.size_bytes += len(tx.encoded)
        self.size_bytes += len(tx.encoded)
        self._by_id[tx.id] = tx
        ready = self._release(sender)
        self._stuck_changed(tx.sender, sender, stuck_before)
        return ready

    def committed(self, txs: Iterable[Transaction], next_nonce: Callable[[bytes], int]) -> Released:
        """A block with ``txs`` committed; ``next_nonce(sender)`` reads the new chain state."""
        released = Released()
        txs = list(txs)
        in_block = {tx.id for tx in txs}
        for public_key in dict.fromkeys(tx.sender for tx in txs):
            sender = self._senders.get(public_key)
            if sender is None:
                continue
            stuck_before = sender.stuck
            sender.next_committed = next_nonce(public_key)
            for nonce in [nonce for nonce in sender.by_nonce if nonce < sender.next_committed]:
                tx = sender.by_nonce.pop(nonce)
                del self._by_id[tx.id]
                sender.size_bytes -= len(tx.encoded)
                self.size_bytes -= len(tx.encoded)
                if nonce < sender.next_release and tx.id not in in_block:
                    released.dropped.append(tx.id)
            sender.next_release = max(sender.next_release, sender.next_committed)
            released.ready.extend(self._release(sender))
            self._stuck_changed(public_key, sender, stuck_before)
            if not sender.by_nonce:
                del self._senders[public_key]
        return released

    def _any_stuck(self) -> bool:
        """Whether a transaction waits behind a missing nonce of its sender (never handed to consensus)."""
        return self._stuck > 0

    def _stuck_changed(self, key: bytes, sender: _Sender, before: int) -> None:
        """Keep ``_stuck`` and ``_most_stuck`` as ``sender``'s stuck count changes from ``before``."""
        stuck = sender.stuck
        if stuck == before:
            return
        self._stuck += stuck - before
        if stuck:
            heapq.heappush(self._most_stuck, (-stuck, sender.arrival, key))
            if len(self._most_stuck) > 2 * len(self._senders):
                self._most_stuck = [(-s.stuck, s.arrival, k) for k, s in self._senders.items() if s.stuck]
                heapq.heapify(self._most_stuck)

    def _to_evict(self) -> tuple[bytes, int] | None:
        """The sender and nonce to evict next (see the module), if any transaction is stuck."""
        while self._most_stuck:
            stuck, arrival, key = self._most_stuck[0]
            sender = self._senders.get(key)
            if sender is not None and sender.arrival == arrival and sender.stuck == -stuck:
                return key, max(sender.by_nonce)
            heapq.heappop(self._most_stuck)
        return None

    def _evict_stuck(self, size: int) -> None:
        """Make room for ``size`` bytes and one transaction by dropping stuck ones (see the module)."""
        while len(self._by_id) >= self.size_max or self.size_bytes + size > self.bytes_max:
            chosen = self._to_evict()
            if chosen is None:
                return
            key, nonce = chosen
            sender = self._senders[key]
            stuck_before = sender.stuck
            tx = sender.by_nonce.pop(nonce)
            del self._by_id[tx.id]
            sender.size_bytes -= len(tx.encoded)
            self.size_bytes -= len(tx.encoded)
            self._stuck_changed(key, sender, stuck_before)
            if not sender.by_nonce:
                del self._senders[key]

    def _release(self, sender: _Sender) -> list[Transaction]:
        ready = []
        while (tx := sender.by_nonce.get(sender.next_release)) is not None:
            ready.append(tx)
            sender.next_release += 1
        return ready
