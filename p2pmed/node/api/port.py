"""``NodePort``: what the RPC methods and the metrics may ask of a running node.

The daemon's ``Node`` is one, validator or observer; tests pass small stand-ins. A node
outside the current validator set (an observer) has no replica and no validator index. Everything here is read
or called on the node's trio thread, like everything else that touches the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from libp2p.peer.id import ID

from p2pmed.consensus.replica import Replica
from p2pmed.ledger.block import Block
from p2pmed.ledger.machine import BlockExecution
from p2pmed.ledger.tx import Transaction
from p2pmed.net.blob_protocol import BlobRequest, BlobResponse
from p2pmed.net.consensus_transport import TransportCounters
from p2pmed.net.faults import FaultInjector
from p2pmed.net.tx_gossip import GossipCounters
from p2pmed.node.mempool import Mempool
from p2pmed.node.seats import Seat
from p2pmed.node.site_audit import SiteAudit
from p2pmed.rpc.server import RpcCounters
from p2pmed.store import Store

__all__ = ["BlockListener", "NodePort", "Traffic"]

BlockListener = Callable[[Block, BlockExecution], None]


@dataclass(frozen=True)
class Traffic:
    """The node's network and RPC counters, read together."""

    transport: TransportCounters
    gossip: GossipCounters
    gossip_txs_refused: Mapping[str, int]
    gossip_txs_rebroadcast: int
    consensus_sent: Mapping[str, int]
    rpc: RpcCounters
    rpc_connections: int
    block_sync_served: Mapping[str, int]
    """``/p2pmed/blocks/1`` requests this node answered or refused, by outcome."""
    snapshot_served: Mapping[str, int]
    """``/p2pmed/snapshot/1`` offers and chunks this node answered, and requests it refused, by outcome."""
    block_sync_fetched: Mapping[str, int]
    """This node's own block sync (outside the validator set): answers by outcome, and blocks taken."""
    consensus_strangers: int
    """Consensus messages from keys outside the current validator set, dropped."""


class NodePort(Protocol):
    @property
    def chain_id(self) -> str: ...
    @property
    def index(self) -> int | None:
        """This node's position in the current validator set; None on an observer."""

    @property
    def moniker(self) -> str: ...
    @property
    def node_key(self) -> bytes:
        """This node's public signing key: its libp2p identity, and what its site audit log is signed with."""

    @property
    def validators(self) -> tuple[Seat, ...]:
        """The validators of the current epoch, in index order."""

    @property
    def epoch(self) -> int:
        """The epoch whose validator set orders the next block."""

    @property
    def peer_ids(self) -> list[ID]:
        """The current validators' peer ids, in index order."""

    @property
    def started_ms(self) -> int: ...
    @property
    def store(self) -> Store: ...
    @property
    def store_path(self) -> Path: ...
    @property
    def replica(self) -> Replica | None:
        """A validator's PBFT replica; None on an observer."""

    @property
    def peer_height(self) -> int | None:
        """While this node catches up, a height the validators have shown (a lower bound on
        the head it is catching up to); None when it is not behind."""

    @property
    def mempool(self) -> Mempool: ...
    @property
    def ledger_time_ms(self) -> int:
        """The latest committed block's time: what the rules decide by."""

    @property
    def faults(self) -> FaultInjector | None:
        """The test harness's fault injector, when ``[fault_injection]`` is on."""

    @property
    def site_audit(self) -> SiteAudit:
        """The site's local audit log: custodian refusals, the operator's reads of a patient's trail."""

    @property
    def block_listeners(self) -> list[BlockListener]:
        """Called with each block this node commits, in order."""

    def now_ms(self) -> int: ...
    def connected_validators(self) -> list[int]:
        """The indexes of the other validators of the current set this node is connected to."""

    def connected_others(self) -> list[ID]:
        """Connected peers that are not validators: observers, and clients following the topic."""

    def traffic(self) -> Traffic: ...
    def submit(self, tx: Transaction) -> None:
        """Raises ``TxRejected`` when the node cannot take ``tx``."""

    async def ask_custodian(self, custodian: bytes, request: BlobRequest) -> BlobResponse: ...
