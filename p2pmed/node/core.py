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

The validator set changes by vote (``p2pmed.ledger.contracts.membership``). When the
block that passes a change executes, the replica learns where its epoch ends
(``Replica.end_epoch``); when the epoch's last block executes, the replica of the next
epoch takes over from it, with that epoch's ``Validators``, an empty consensus log (the
old epoch's records are deleted in the same write that notes the new epoch: nothing of
the old epoch is signed again) and the transactions waiting in the mempool. A node
outside the set of the current epoch runs no replica (``replica`` is None): it orders
nothing and only executes blocks it is given (``apply_synced``). Every node keeps a proof
of each change, certified by the old set (``p2pmed.node.epoch_proofs``), for reports
checked offline from genesis. Peers are named by their
validator key, not by an index: indexes change from one epoch to the next.

State commitments. Each header commits to the outcome of an earlier block
(``p2pmed.consensus.state_commitments``); the store is the replica's source of them, and
the replica hears after each block that it may take up pre-prepares it held for that
block's outcome (``Replica.state_advanced``). A new epoch's replica starts after the old
epoch's last block has executed, so every block its first proposals may commit to (the
last ``STATE_LAG_MAX``, of the old epoch) has an outcome here. A block is executed only
if its commitment equals this node's own outcome of the block it names. A certified
block can differ only if its epoch's quorum signed a root that is not this node's: more
than f of that set are faulty, or this node's execution diverged from the honest
validators' (a bug, a store damaged behind SQLite's back). One Byzantine peer cannot
cause it: the certificate is checked first. A node outside the set refuses such a block
as it refuses a forged one (``InvalidMessage``: its follower asks another validator, and
stays at its head rather than build on a state the quorum disagrees with); a validator,
whose replica already counts the block as decided, stops (``StorageFailed``).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from p2pmed import codec
from p2pmed.consensus.actions import Action, Broadcast, CommitBlock, Persist, Send, ServeBlocks
from p2pmed.consensus.certificates import InvalidMessage, Validators
from p2pmed.consensus.foreign_fetches import ForeignFetches
from p2pmed.consensus.light_client import check_next, validators_at
from p2pmed.consensus.messages import (
    Blocks,
    BlockWithCertificate,
    CommitCertificate,
    FetchBlocks,
    blocks_answer,
    decode_message,
    encode_message,
    message_kind,
)
from p2pmed.consensus.replica import Replica, ReplicaConfig
from p2pmed.crypto import Ed25519Verifier, Signer, Verifier
from p2pmed.ledger.block import GENESIS_PARENT_HASH, Block
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.errors import TxRejected
from p2pmed.ledger.machine import BlockExecution, Ledger, ledger_time_ms, next_nonce
from p2pmed.ledger.tx import Transaction
from p2pmed.node.admission import TxAdmission
from p2pmed.node.epoch_proofs import keep_epoch_proof
from p2pmed.node.mempool import Mempool
from p2pmed.store import Store
from p2pmed.store.sqlite import SNAPSHOT_INTERVAL_BLOCKS

__all__ = ["NodeCore", "Outgoing", "StorageFailed", "leaf_errors"]

RECENT_TX_IDS_MAX = 100_000
IDLE_TICK_MS = 60_000

Outgoing = list[tuple[bytes, bytes]]
"""(destination validator key, encoded message) pairs for the transport."""

EPOCH_RECORD = "epoch"
"""The consensus record naming the epoch the other records belong to (absent: epoch 0)."""


class StorageFailed(BaseException):
    """A write to the store failed, or a decided block's state commitment is not this node's:
    the node must stop. A ``BaseException``, so that no ``except Exception`` on the way (an
    RPC handler's, say) turns it into an error reply."""


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
        signer: Signer,
        config: ReplicaConfig,
        now_ms: int,
        genesis_hash: bytes = GENESIS_PARENT_HASH,
        *,
        verifier: Verifier | None = None,
        probes_from_anyone: bool = False,
        snapshot_interval: int = SNAPSHOT_INTERVAL_BLOCKS,
    ) -> None:
        self.ledger = ledger
        self.store = Store.open(store_path, ledger.chain_id, genesis_hash, ledger.genesis_state, snapshot_interval)
        self.admission = TxAdmission(ledger, self.store, probes_from_anyone=probes_from_anyone)
        self.mempool = Mempool(size_max=config.pending_max)
        self._signer = signer
        self._config = config
        self._verifier = verifier or Ed25519Verifier()
        self._now_ms = now_ms
        self.ledger_time_ms = ledger_time_ms(self.store)
        """The ledger's clock (``p2pmed.ledger.machine.ledger_time_ms``): "now" for decisions the
        ledger makes outside a block, such as whether a consent is still in force."""
        self.commit_listeners: list[Callable[[Block, BlockExecution], None]] = []
        self.epoch_listeners: list[Callable[[Validators], None]] = []
        """Called with the new set when an epoch begins (the transport reconnects to it)."""
        self.sent: Counter[str] = Counter()  # messages handed to the network by kind, one per destination
        self.refused_senders = 0
        """Consensus messages from keys outside the current validator set, dropped."""
        self._storage_error: StorageFailed | None = None
        self._foreign = ForeignFetches(config.fetch_serve_interval_ms)
        self._records: dict[str, bytes | None] = {}
        self.validators = self._epoch_validators()
        self.replica: Replica | None = None
        records = dict(self.store.consensus_items())
        if records.get(EPOCH_RECORD, codec.encode(0)) == codec.encode(self.validators.epoch):
            self._start_actions = self._start_replica(records)
        else:  # the node stopped between the last block of an epoch and the start of the next
            self._records = {**dict.fromkeys(records), EPOCH_RECORD: codec.encode(self.validators.epoch)}
            self._start_actions = self._start_replica({})

    def _epoch_validators(self) -> Validators:
        """The set of the epoch that orders the next block, from the ledger state."""
        return validators_at(self.store, self.store.head()[0] + 1, self.ledger.chain_id, self._verifier)

    def _epoch_last(self) -> int | None:
        """Where the current epoch ends, once a change has passed."""
        latest = membership.latest_epoch(self.store)
        assert latest is not None
        return latest.first_height - 1 if latest.number > self.validators.epoch else None

    def _start_replica(self, records: dict[str, bytes]) -> list[Action]:
        """This node's replica for the current epoch, if it is in the set; its first actions."""
        self._index_of = {key: index for index, key in enumerate(self.validators.keys)}
        if self._signer.public_key not in self._index_of:
            self.replica = None
            return []
        height, head_hash = self.store.head()
        self.replica = Replica(
            self.validators,
            self._signer,
            self._config,
            self._check_tx,
            now_ms=self._now_ms,
            last_executed=height,
            last_block_hash=head_hash,
            last_block_time_ms=self._head_time_ms(height),
            records=records,
            committed_tx_ids=self.store.recent_tx_ids(RECENT_TX_IDS_MAX),
            epoch_last=self._epoch_last(),
            commitments=self.store,
        )
        actions = self.replica.start(self._now_ms)
        return [*actions, *self._hand_to_replica(self.mempool.released())]

    def _head_time_ms(self, height: int) -> int:
        head = self.store.block_header(height) if height else None
        return 0 if head is None else head.time_ms

    def start(self) -> Outgoing:
        actions, self._start_actions = self._start_actions, []
        return self._carry_out(actions)

    def submit(self, tx: Transaction, now_ms: int) -> Outgoing:
        """A client transaction; raises ``TxRejected`` if it fails the ledger's checks,
        is already on the chain or cannot wait in the mempool."""
        self._now_ms = now_ms
        return self._carry_out(self._hand_to_replica(self.admission.hold(self.mempool, tx)))

    def submit_many(self, txs: Iterable[Transaction], now_ms: int) -> tuple[Outgoing, list[TxRejected]]:
        """Transactions that arrived together (a gossip batch), each held as ``submit`` holds
        it and handed to the replica in one go, so that a primary proposes them together; with
        why each refused one was refused."""
        self._now_ms = now_ms
        released: list[Transaction] = []
        refused: list[TxRejected] = []
        for tx in txs:
            try:
                released.extend(self.admission.hold(self.mempool, tx))
            except TxRejected as error:
                refused.append(error)
        return self._carry_out(self._hand_to_replica(released)), refused

    def admit(self, tx: Transaction) -> bool:
        """``TxAdmission.admit``: may ``tx`` wait in the mempool and be relayed."""
        return self.admission.admit(tx)

    def receive(self, sender: bytes, data: bytes, now_ms: int) -> Outgoing:
        return self.receive_many([(sender, data)], now_ms)

    def receive_many(self, messages: Iterable[tuple[bytes, bytes]], now_ms: int) -> Outgoing:
        """Messages that arrived together, each with its sender's validator key: what they make
        the replica persist is written in one SQL transaction (one fsync) before any of the
        replies is returned for sending."""
        self._now_ms = now_ms
        actions: list[Action] = []
        answers: Outgoing = []
        for sender, data in messages:
            assert isinstance(sender, bytes), "peers are named by validator key"
            index = self._index_of.get(sender)
            try:
                message = decode_message(data)
            except codec.CodecError:
                message = None  # the replica counts it as malformed, if it may hear this peer
            if message is not None and self._foreign.is_foreign(message, index, self.replica is not None):
                assert isinstance(message, FetchBlocks)
                if self._foreign.admit(sender, now_ms):  # a peer of another epoch (``foreign_fetches``)
                    served = self.blocks_from(message.from_height)
                    self.sent[message_kind(served)] += 1
                    answers.append((sender, encode_message(served)))
                continue
            if index is None or self.replica is None:
                self.refused_senders += 1
                continue
            if message is None:
                actions.extend(self.replica.receive(index, data, now_ms))
            else:
                actions.extend(self.replica.deliver(index, message, now_ms))
        return answers + self._carry_out(actions)

    def tick(self, now_ms: int) -> Outgoing:
        self._now_ms = now_ms
        return self._carry_out(self.replica.tick(now_ms) if self.replica is not None else [])

    def next_deadline_ms(self) -> int:
        """When ``tick`` next has work (far away for a node outside the set: it has none)."""
        return self.replica.next_deadline_ms() if self.replica is not None else self._now_ms + IDLE_TICK_MS

    def apply_synced(self, item: BlockWithCertificate) -> Outgoing:
        """The next block for a node outside the validator set, synced from a peer: taken if
        a quorum of its epoch's set certified it (as a light client checks: the set comes
        from the chain verified so far) and it commits to this node's outcome of the block it
        names; raises ``InvalidMessage`` if not. When it begins an epoch this node is in, the
        node's replica starts and its first messages are returned."""
        assert self.replica is None, "a validator takes blocks through its replica"
        check_next(self.validators, *self.store.head(), item)
        diverged = self._diverged(item.block)
        if diverged is not None:
            raise InvalidMessage(diverged)
        return self._carry_out([CommitBlock(item.block, item.certificate)])

    def close(self) -> None:
        self.store.close()

    def _check_tx(self, tx: Transaction) -> bool:
        try:
            return self.admission.accept(tx)
        except TxRejected:
            return False

    def _hand_to_replica(self, txs: Iterable[Transaction]) -> list[Action]:
        return [] if self.replica is None else self.replica.submit_many(txs, self._now_ms)

    def _carry_out(self, actions: Iterable[Action]) -> Outgoing:
        if self._storage_error is not None:  # nothing may leave a node whose memory is ahead of its disk
            raise self._storage_error
        outgoing: Outgoing = []
        work = deque(actions)
        keys = self.validators.keys
        while work:
            action = work.popleft()
            if isinstance(action, Persist):
                self._records.update(action.records)  # written once below, before any message leaves
            elif isinstance(action, Send):
                self.sent[message_kind(action.message)] += 1
                outgoing.append((keys[action.to], encode_message(action.message)))
            elif isinstance(action, Broadcast):
                data = encode_message(action.message)
                self.sent[message_kind(action.message)] += len(keys) - 1
                outgoing.extend((key, data) for key in keys if key != self._signer.public_key)
            elif isinstance(action, CommitBlock):
                epoch = self.validators.epoch
                released = self._commit(action.block, action.certificate)
                if self.validators.epoch != epoch:  # the old epoch's remaining actions are void
                    work.clear()
                    keys = self.validators.keys
                work.extend(released)
            elif isinstance(action, ServeBlocks):
                served = self.blocks_from(action.from_height)
                self.sent[message_kind(served)] += 1
                outgoing.append((keys[action.to], encode_message(served)))
        if self._records:
            records, self._records = self._records, {}
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
        """Store the block; returns what telling the replica (the block's state commitment is known
        now) and handing it the transactions the block unblocked produced, or, after the last block
        of an epoch, what the next epoch's replica starts with."""
        diverged = self._diverged(block)
        if diverged is not None:
            self._storage_error = StorageFailed(f"{diverged}, so the node stops")
            raise self._storage_error
        execution = self.ledger.execute_block(self.store, block, verified_tx_ids=self.admission.verified)
        self._durably(self.store.append_block, block, execution, codec.encode(certificate))
        self.ledger_time_ms = execution.time_ms
        self._durably(keep_epoch_proof, self.store)
        for listener in list(self.commit_listeners):  # a listener may remove itself
            listener(block, execution)
        released = self.mempool.committed(block.txs, lambda sender: next_nonce(self.store, sender))
        if self.replica is not None:
            self.replica.discard(released.dropped)
        validators = self._epoch_validators()
        if validators.epoch != self.validators.epoch:
            return self._begin_epoch(validators)
        if self.replica is None:
            return []
        epoch_last = self._epoch_last()
        if epoch_last is not None and self.replica.epoch_last is None:
            self.replica.end_epoch(epoch_last)  # before the replica may propose again
        return [*self.replica.state_advanced(self._now_ms), *self._hand_to_replica(released.ready)]

    def _diverged(self, block: Block) -> str | None:
        """Why a certified ``block`` cannot execute here: it commits to an outcome other than this
        node's (see the module's "State commitments"); None when it commits to this node's."""
        claimed = block.header.state
        if not self.store.knows_outcome(claimed.height) or claimed == self.store.commitment(claimed.height):
            return None  # before a snapshot's base, the certificate is all there is to go by
        return (
            f"block {block.height}, certified by epoch {self.validators.epoch}'s quorum, commits to a state after"
            f" block {claimed.height} other than this node's: more than f of that set are faulty, or this node's"
            " execution diverged"
        )

    def _begin_epoch(self, validators: Validators) -> list[Action]:
        """The last block of an epoch executed: the old replica's records go (in the write that
        notes the new epoch, before anything of the new one is sent) and the new set takes over."""
        self.validators = validators
        self._records = dict.fromkeys(key for key, _ in self.store.consensus_items())
        self._records[EPOCH_RECORD] = codec.encode(validators.epoch)
        actions = self._start_replica({})
        for listener in list(self.epoch_listeners):
            listener(validators)
        return actions

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
