"""One validator's consensus, ledger and store wired together, with no network and no clock.

``NodeCore`` is what the daemon runs between its network and its timers, and
what integration tests drive directly. It carries out the replica's actions:
the ``Persist`` records of one call go to the store's consensus table in one SQL
transaction (durable, ``synchronous=FULL``: one fsync, not one per vote) before
the call returns its messages for sending (``receive_many`` takes every message
that arrived together, so one fsync covers them all); ``CommitBlock`` executes the block with the ledger and appends
it, its outcomes and its commit certificate in one SQL transaction;
``ServeBlocks`` answers a lagging peer from the store. A store write that fails
(disk full, I/O error) stops the node: ``StorageFailed``, which no handler
catches, is raised then and on every later call, so the replica's memory never
runs ahead of what is on disk; a restart recovers from what was written. Each transaction's
signature is verified once per node: on arrival, or when a proposal carries one
this node has not seen. Client transactions wait in the ``Mempool`` until their
sender's lower nonces are committed or ahead of them in consensus.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from p2pmed import codec
from p2pmed.consensus.actions import Action, Broadcast, CommitBlock, Persist, Send, ServeBlocks
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.messages import (
    Blocks,
    BlockWithCertificate,
    CommitCertificate,
    blocks_answer,
    encode_message,
    message_kind,
)
from p2pmed.consensus.replica import Replica, ReplicaConfig
from p2pmed.crypto import Signer
from p2pmed.ledger.block import GENESIS_PARENT_HASH, Block
from p2pmed.ledger.errors import TxRejected
from p2pmed.ledger.machine import BlockExecution, Ledger, ledger_time_ms, next_nonce
from p2pmed.ledger.tx import Transaction
from p2pmed.node.admission import TxAdmission
from p2pmed.node.mempool import Mempool
from p2pmed.store import Store

__all__ = ["NodeCore", "Outgoing", "StorageFailed", "leaf_errors"]

RECENT_TX_IDS_MAX = 100_000

Outgoing = list[tuple[int, bytes]]
"""(destination replica index, encoded message) pairs for the transport."""


class StorageFailed(BaseException):
    """A write to the store failed: the node must stop. A ``BaseException``, so that no
    ``except Exception`` on the way (an RPC handler's, say) turns it into an error reply."""


def leaf_errors(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions in ``group`` and in the groups inside it (trio nests a group per nursery)."""
    return [
        leaf
        for error in group.exceptions
        for leaf in (leaf_errors(error) if isinstance(error, BaseExceptionGroup) else [error])
    ]


class NodeCore:
    def __init__(
        self,
        store_path: Path,
        ledger: Ledger,
        validators: Validators,
        signer: Signer,
        config: ReplicaConfig,
        now_ms: int,
        genesis_hash: bytes = GENESIS_PARENT_HASH,
        *,
        probes_from_anyone: bool = False,
    ) -> None:
        self.ledger = ledger
        self.store = Store.open(store_path, ledger.chain_id, genesis_hash, ledger.genesis_state)
        self.admission = TxAdmission(ledger, self.store, probes_from_anyone=probes_from_anyone)
        self.validators = validators
        self.mempool = Mempool(size_max=config.pending_max)
        self._now_ms = now_ms
        height, head_hash = self.store.head()
        self.ledger_time_ms = ledger_time_ms(self.store)
        """The ledger's clock (``p2pmed.ledger.machine.ledger_time_ms``): "now" for decisions the
        ledger makes outside a block, such as whether a consent is still in force."""
        self.replica = Replica(
            validators,
            signer,
            config,
            self._check_tx,
            now_ms=now_ms,
            last_executed=height,
            last_block_hash=head_hash,
            last_block_time_ms=self._head_time_ms(height),
            records=dict(self.store.consensus_items()),
            committed_tx_ids=self.store.recent_tx_ids(RECENT_TX_IDS_MAX),
            commitments=self.store,
        )
        self.commit_listeners: list[Callable[[Block, BlockExecution], None]] = []
        self.sent: Counter[str] = Counter()  # messages handed to the network by kind, one per destination
        self._start_actions = self.replica.start(now_ms)
        self._storage_error: StorageFailed | None = None

    def _head_time_ms(self, height: int) -> int:
        head = self.store.block(height) if height else None
        return 0 if head is None else head.header.time_ms

    def start(self) -> Outgoing:
        actions, self._start_actions = self._start_actions, []
        return self._carry_out(actions)

    def submit(self, tx: Transaction, now_ms: int) -> Outgoing:
        """A client transaction; raises ``TxRejected`` if it fails the ledger's checks,
        is already on the chain or cannot wait in the mempool."""
        self._now_ms = now_ms
        return self._carry_out(self._hand_to_replica(self.admission.hold(self.mempool, tx)))

    def admit(self, tx: Transaction) -> bool:
        """``TxAdmission.admit``: may ``tx`` wait in the mempool and be relayed."""
        return self.admission.admit(tx)

    def receive(self, sender: int, data: bytes, now_ms: int) -> Outgoing:
        return self.receive_many([(sender, data)], now_ms)

    def receive_many(self, messages: Iterable[tuple[int, bytes]], now_ms: int) -> Outgoing:
        """Messages that arrived together: what they make the replica persist is written in
        one SQL transaction (one fsync) before any of the replies is returned for sending."""
        self._now_ms = now_ms
        actions: list[Action] = []
        for sender, data in messages:
            actions.extend(self.replica.receive(sender, data, now_ms))
        return self._carry_out(actions)

    def tick(self, now_ms: int) -> Outgoing:
        self._now_ms = now_ms
        return self._carry_out(self.replica.tick(now_ms))

    def next_deadline_ms(self) -> int:
        return self.replica.next_deadline_ms()

    def close(self) -> None:
        self.store.close()

    def _check_tx(self, tx: Transaction) -> bool:
        try:
            return self.admission.accept(tx)
        except TxRejected:
            return False

    def _hand_to_replica(self, txs: Iterable[Transaction]) -> list[Action]:
        actions: list[Action] = []
        for tx in txs:
            actions.extend(self.replica.submit(tx, self._now_ms))
        return actions

    def _carry_out(self, actions: Iterable[Action]) -> Outgoing:
        if self._storage_error is not None:  # nothing may leave a node whose memory is ahead of its disk
            raise self._storage_error
        outgoing: Outgoing = []
        records: dict[str, bytes | None] = {}
        work = deque(actions)
        while work:
            action = work.popleft()
            if isinstance(action, Persist):
                records.update(action.records)  # written once below, before any message leaves
            elif isinstance(action, Send):
                self.sent[message_kind(action.message)] += 1
                outgoing.append((action.to, encode_message(action.message)))
            elif isinstance(action, Broadcast):
                data = encode_message(action.message)
                self.sent[message_kind(action.message)] += self.validators.n - 1
                outgoing.extend((index, data) for index in range(self.validators.n) if index != self.replica.index)
            elif isinstance(action, CommitBlock):
                work.extend(self._commit(action.block, action.certificate))
            elif isinstance(action, ServeBlocks):
                served = self.blocks_from(action.from_height)
                self.sent[message_kind(served)] += 1
                outgoing.append((action.to, encode_message(served)))
        if records:
            self._durably(self.store.consensus_put, records)
        return outgoing

    def _durably(self, write: Callable[..., None], *args: object) -> None:
        """Run a store write on the consensus path; if it fails, stop for good (fail-stop)."""
        if self._storage_error is not None:
            raise self._storage_error
        try:
            write(*args)
        except Exception as error:
            self._storage_error = StorageFailed(f"the store write failed, so the node stops: {error!r}")
            raise self._storage_error from error

    def _commit(self, block: Block, certificate: CommitCertificate) -> list[Action]:
        """Store the block; returns what telling the replica (its state commitment is known now)
        and handing it the transactions the block unblocked produced."""
        execution = self.ledger.execute_block(self.store, block, verified_tx_ids=self.admission.verified)
        self._durably(self.store.append_block, block, execution, codec.encode(certificate))
        self.ledger_time_ms = execution.time_ms
        for listener in list(self.commit_listeners):  # a listener may remove itself
            listener(block, execution)
        released = self.mempool.committed(block.txs, lambda sender: next_nonce(self.store, sender))
        self.replica.discard(released.dropped)
        return [*self.replica.state_advanced(self._now_ms), *self._hand_to_replica(released.ready)]

    def blocks_from(self, from_height: int) -> Blocks:
        """Committed blocks from ``from_height`` on with their certificates, as much as one answer holds."""
        return blocks_answer(self._stored_blocks(from_height))

    def _stored_blocks(self, from_height: int) -> Iterator[BlockWithCertificate]:
        height, _ = self.store.head()
        for number in range(max(from_height, 1), height + 1):
            block, certificate = self.store.block(number), self.store.certificate(number)
            if block is None or certificate is None:
                return
            yield BlockWithCertificate(block, codec.decode(CommitCertificate, certificate, codec.BLOCK_SIZE_MAX))
