"""One validator's consensus, ledger and store wired together, with no network and no clock.

``NodeCore`` is what the daemon runs between its network and its timers, and
what integration tests drive directly. It carries out the replica's actions in
the order the replica gives them: ``Persist`` goes to the store's consensus table
(durable, ``synchronous=FULL``) before any message built afterwards is handed
back for sending; ``CommitBlock`` executes the block with the ledger and appends
it, its outcomes and its commit certificate in one SQL transaction;
``ServeBlocks`` answers a lagging peer from the store. Each transaction's
signature is verified once per node: on arrival, or when a proposal carries one
this node has not seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from p2pmed import codec
from p2pmed.consensus.actions import Action, Broadcast, CommitBlock, Persist, Send, ServeBlocks
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.messages import (
    FETCH_BLOCKS_MAX,
    Blocks,
    BlockWithCertificate,
    CommitCertificate,
    Message,
    encode_message,
)
from p2pmed.consensus.replica import Replica, ReplicaConfig
from p2pmed.crypto import Signer
from p2pmed.ledger.block import Block
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.machine import Ledger
from p2pmed.ledger.tx import Transaction
from p2pmed.store import Store

__all__ = ["NodeCore", "Outgoing"]

VERIFIED_IDS_MAX = 200_000
RECENT_TX_IDS_MAX = 100_000

Outgoing = list[tuple[int, bytes]]
"""(destination replica index, encoded message) pairs for the transport."""


class NodeCore:
    def __init__(
        self,
        store_path: Path,
        ledger: Ledger,
        validators: Validators,
        signer: Signer,
        config: ReplicaConfig,
        now_ms: int,
    ) -> None:
        self.ledger = ledger
        self.store = Store.open(store_path, ledger.chain_id)
        self.validators = validators
        self._verified: dict[bytes, None] = {}
        height, head_hash = self.store.head()
        self.replica = Replica(
            validators,
            signer,
            config,
            self._check_tx,
            now_ms=now_ms,
            last_executed=height,
            last_block_hash=head_hash,
            records=dict(self.store.consensus_items()),
            committed_tx_ids=self.store.recent_tx_ids(RECENT_TX_IDS_MAX),
        )
        self.committed: list[int] = []
        self._start_actions = self.replica.start(now_ms)

    def start(self) -> Outgoing:
        actions, self._start_actions = self._start_actions, []
        return self._carry_out(actions)

    def submit(self, tx: Transaction, now_ms: int) -> Outgoing:
        """A client transaction; raises ``TxRejected`` if it fails the ledger's checks
        or is already on the chain."""
        if self.store.transaction(tx.id) is not None:
            raise TxRejected(RejectReason.DUPLICATE, f"transaction {tx.id.hex()[:16]} is already committed")
        if tx.id not in self._verified:
            self.ledger.check(tx)
            self._remember_verified(tx.id)
        return self._carry_out(self.replica.submit(tx, now_ms))

    def receive(self, sender: int, data: bytes, now_ms: int) -> Outgoing:
        return self._carry_out(self.replica.receive(sender, data, now_ms))

    def tick(self, now_ms: int) -> Outgoing:
        return self._carry_out(self.replica.tick(now_ms))

    def next_deadline_ms(self) -> int:
        return self.replica.next_deadline_ms()

    def close(self) -> None:
        self.store.close()

    def _check_tx(self, tx: Transaction) -> bool:
        if tx.id in self._verified:
            return True
        try:
            self.ledger.check(tx)
        except TxRejected:
            return False
        self._remember_verified(tx.id)
        return True

    def _remember_verified(self, tx_id: bytes) -> None:
        self._verified[tx_id] = None
        if len(self._verified) > VERIFIED_IDS_MAX:
            del self._verified[next(iter(self._verified))]

    def _carry_out(self, actions: Iterable[Action]) -> Outgoing:
        outgoing: Outgoing = []
        for action in actions:
            if isinstance(action, Persist):
                self.store.consensus_put(action.records)
            elif isinstance(action, Send):
                outgoing.append((action.to, encode_message(action.message)))
            elif isinstance(action, Broadcast):
                data = encode_message(action.message)
                outgoing.extend((index, data) for index in range(self.validators.n) if index != self.replica.index)
            elif isinstance(action, CommitBlock):
                self._commit(action.block, action.certificate)
            elif isinstance(action, ServeBlocks):
                outgoing.append((action.to, encode_message(self._blocks_from(action.from_height))))
        return outgoing

    def _commit(self, block: Block, certificate: CommitCertificate) -> None:
        execution = self.ledger.execute_block(self.store, block, verified_tx_ids=self._verified)
        self.store.append_block(block, execution, certificate=codec.encode(certificate))
        self.committed.append(block.height)

    def _blocks_from(self, from_height: int) -> Message:
        height, _ = self.store.head()
        served = []
        for number in range(from_height, min(height, from_height + FETCH_BLOCKS_MAX - 1) + 1):
            block, certificate = self.store.block(number), self.store.certificate(number)
            if block is None or certificate is None:
                break
            served.append(BlockWithCertificate(block, codec.decode(CommitCertificate, certificate, codec.BLOCK_SIZE_MAX)))
        return Blocks(tuple(served))
