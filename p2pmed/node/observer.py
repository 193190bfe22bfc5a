"""The daemon of an observer: a node that follows the chain and votes on nothing.

An observer's key is not in genesis.json (config ``role = "observer"``). It runs no
replica and opens no consensus stream; the validators' ``/p2pmed/pbft/1`` would refuse
it anyway. Tasks, all in one nursery inside ``host.run``:

- one dialer per validator (``p2pmed.node.dialer``);
- the follower (``p2pmed.node.follower``): asks the validators for their committed blocks
  over ``/p2pmed/blocks/1``, verifies each block's commit certificate against the genesis
  validator set and executes it into the store with the validators' ledger code;
- gossip (``p2pmed.net.tx_gossip``): follows the transaction topic through any validator,
  holding what it receives in its mempool (``tx.get`` says "pending"), and relays its own
  clients' transactions (the validators must admit its peer id as a publisher);
- the rebroadcaster, the JSON-RPC server and the Prometheus endpoint, as on a validator.

Every read RPC method and the CLI work as on a validator, from the observer's own store.
What needs a replica (``debug.faults``, the consensus counters) answers that this node is
an observer; ``record.store`` and ``record.fetch`` are refused: only validators reach the
custodians.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import multiaddr
import structlog
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID

from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.light_client import genesis_sets
from p2pmed.consensus.replica import Replica
from p2pmed.crypto import Ed25519Verifier
from p2pmed.ledger.block import Block
from p2pmed.ledger.contracts import ALL_TX_TYPES
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.machine import BlockExecution, Ledger, ledger_time_ms, next_nonce
from p2pmed.ledger.tx import Transaction
from p2pmed.net import GossipCounters, TransportCounters, peer_id_of
from p2pmed.net.blob_protocol import BlobRequest, BlobResponse, refused
from p2pmed.net.block_sync import BlockSyncClient
from p2pmed.net.host import node_host
from p2pmed.net.tx_gossip import TxGossip
from p2pmed.node.admission import TxAdmission
from p2pmed.node.api.port import BlockListener, Traffic
from p2pmed.node.core import StorageFailed, leaf_errors
from p2pmed.node.daemon import GOSSIP_FLUSH_INTERVAL_S, NodeClock
from p2pmed.node.dialer import keep_connected
from p2pmed.node.follower import ChainFollower
from p2pmed.node.mempool import Mempool
from p2pmed.node.metrics import NodeMetrics
from p2pmed.node.metrics_http import serve_metrics
from p2pmed.node.publishers import admitted_peers
from p2pmed.node.rebroadcast import Rebroadcast
from p2pmed.node.site_audit import LOG_FILE, SiteAudit
from p2pmed.rpc.server import RpcCounters, RpcServer
from p2pmed.site.genesis import ValidatorInfo
from p2pmed.site.home import LoadedHome
from p2pmed.store import Store
from p2pmed.store.audit_log import SignedLog

__all__ = ["Observer"]

log = structlog.get_logger(__name__)

OTHER_PEERS_LISTED_MAX = 1_000


class Observer:
    def __init__(self, home: LoadedHome, clock: NodeClock | None = None) -> None:
        assert home.is_observer, "a validator's home runs a Node"
        self.home = home
        self.clock = clock or NodeClock()
        self.started_ms = self.clock.now_ms()
        genesis = home.genesis
        self.chain_id = genesis.chain_id
        self.validators = Validators(genesis.chain_id, genesis.validator_keys, Ed25519Verifier())
        self.peer_ids = [peer_id_of(key) for key in genesis.validator_keys]
        ledger = Ledger(genesis.chain_id, ALL_TX_TYPES, genesis.ledger_state())
        self._store = Store.open(home.store_path, genesis.chain_id, genesis.hash, ledger.genesis_state)
        self.admission = TxAdmission(ledger, self._store, probes_from_anyone=home.config.probes_from_anyone)
        self._mempool = Mempool()
        self._ledger_time_ms = ledger_time_ms(self._store)
        self._block_listeners: list[BlockListener] = [self._on_commit]
        self.follower = ChainFollower(
            self._store,
            ledger,
            genesis_sets(self.validators),
            self.admission.verified,
            self._block_listeners,
            self.validators.f,
        )
        self._site_audit = SiteAudit(
            SignedLog(home.store_path.parent / LOG_FILE, home.key, genesis.chain_id, self.clock.now_ms),
            self.clock.now_ms,
            genesis.chain_id,
        )
        self.rebroadcast = Rebroadcast()
        self.gossip_txs_refused: Counter[str] = Counter()
        self.metrics = NodeMetrics(self)
        self.host: IHost | None = None
        self.gossip: TxGossip | None = None
        self.rpc_server: RpcServer | None = None

    # -- what RPC methods and metrics read (``p2pmed.node.api.port.NodePort``) ------

    @property
    def index(self) -> None:
        return None

    @property
    def moniker(self) -> str:
        return self.home.config.moniker

    @property
    def node_key(self) -> bytes:
        return self.home.key.public_key

    @property
    def genesis_validators(self) -> tuple[ValidatorInfo, ...]:
        return self.home.genesis.validators

    @property
    def store(self) -> Store:
        return self._store

    @property
    def store_path(self) -> Path:
        return self.home.store_path

    @property
    def replica(self) -> Replica | None:
        return None

    @property
    def mempool(self) -> Mempool:
        return self._mempool

    @property
    def ledger_time_ms(self) -> int:
        return self._ledger_time_ms

    @property
    def peer_height(self) -> int | None:
        head = self.follower.validators_head
        return head if head > self.follower.height else None

    @property
    def faults(self) -> None:
        return None

    @property
    def site_audit(self) -> SiteAudit:
        return self._site_audit

    @property
    def block_listeners(self) -> list[BlockListener]:
        return self._block_listeners

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def connected_validators(self) -> list[int]:
        connected = self._connected()
        return [index for index, peer_id in enumerate(self.peer_ids) if peer_id in connected]

    def connected_others(self) -> list[ID]:
        validators = set(self.peer_ids)
        return [peer for peer in self._connected() if peer not in validators][:OTHER_PEERS_LISTED_MAX]

    def traffic(self) -> Traffic:
        server = self.rpc_server
        return Traffic(
            transport=TransportCounters(),
            gossip=self.gossip.counters if self.gossip is not None else GossipCounters(),
            gossip_txs_refused=self.gossip_txs_refused,
            gossip_txs_rebroadcast=self.rebroadcast.resent,
            consensus_sent={},
            rpc=server.counters if server is not None else RpcCounters(),
            rpc_connections=server.connections if server is not None else 0,
        )

    def submit(self, tx: Transaction) -> None:
        """A client transaction: check it, hold it and gossip it to the validators. Raises
        ``TxRejected`` with the reason when it cannot be taken."""
        assert self.gossip is not None, "the node is not running"
        if len(tx.encoded) > self.gossip.tx_size_max:
            raise TxRejected(
                RejectReason.TOO_BIG,
                f"{len(tx.encoded)} bytes; transactions travel between nodes in batches of at most "
                f"{self.gossip.tx_size_max} bytes",
            )
        self.admission.hold(self._mempool, tx)
        now_ms = self.clock.now_ms()
        self.metrics.submitted(tx.id)
        self.gossip.publish(tx)
        self.rebroadcast.sent(tx, now_ms)

    async def ask_custodian(self, custodian: bytes, request: BlobRequest) -> BlobResponse:
        return refused("this node is an observer: custodians serve records through a validator's node")

    # -- running ----------------------------------------------------------------

    async def run(
        self, *, rpc_server: Callable[[Observer], RpcServer] | None = None, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; then close the store."""
        host = self.host = node_host(self.home.key)
        listen = multiaddr.Multiaddr(self.home.config.listen)
        try:
            async with trio.open_nursery() as outer:  # open before host.run (see DESIGN.md)
                async with host.run(listen_addrs=[listen]):
                    async with trio.open_nursery() as nursery:
                        await self._start(host, nursery, rpc_server)
                        log.info(
                            "observer started",
                            chain=self.chain_id,
                            peer_id=str(host.get_id()),
                            listen=str(listen),
                            height=self.follower.height,
                        )
                        task_status.started()
                outer.cancel_scope.cancel()
        except* StorageFailed as failed:
            log.critical("node stopping: a store write failed", error=str(leaf_errors(failed)[0]))
            raise
        finally:
            height = self._store.head()[0]
            self._site_audit.close()
            self._store.close()
            log.info("node stopped", height=height)

    async def _start(
        self, host: IHost, nursery: trio.Nursery, rpc_server: Callable[[Observer], RpcServer] | None
    ) -> None:
        validators = set(self.peer_ids).__contains__
        self.gossip = TxGossip(
            host,
            self.chain_id,
            self._accept_gossiped,
            flush_interval=GOSSIP_FLUSH_INTERVAL_S,
            admitted=admitted_peers(self.home.config, [*self.peer_ids, host.get_id()], self._store),
            unbudgeted=validators,
            full_mesh=validators,
        )
        await nursery.start(self.gossip.run)
        for index, (peer_id, validator) in enumerate(zip(self.peer_ids, self.home.genesis.validators, strict=True)):
            address = multiaddr.Multiaddr(validator.address)
            host.get_peerstore().add_addrs(peer_id, [address], 0)  # ttl 0: permanent
            nursery.start_soon(keep_connected, host, peer_id, address, self._connection_logger(index))
        nursery.start_soon(self.follower.run, BlockSyncClient(host), self.peer_ids, self._connected)
        nursery.start_soon(self._gossip_pump, self.gossip)
        nursery.start_soon(self._rebroadcast_loop, self.gossip)
        if rpc_server is not None:
            self.rpc_server = rpc_server(self)
            await nursery.start(self.rpc_server.run)
        if self.home.config.metrics_port:
            await nursery.start(serve_metrics, self.metrics.registry, self.home.config.metrics_port)

    def _connected(self) -> set[ID]:
        return set(self.host.get_connected_peers()) if self.host is not None else set()

    def _connection_logger(self, index: int) -> Callable[[bool], None]:
        def logged(connected: bool) -> None:
            log.info("peer connected" if connected else "peer disconnected", peer=index, height=self.follower.height)

        return logged

    def _accept_gossiped(self, tx: Transaction) -> bool:
        try:
            return self.admission.admit(tx)
        except TxRejected as error:
            self._count_refused(error)
            return False

    def _count_refused(self, error: TxRejected) -> None:
        self.gossip_txs_refused[error.reason.value] += 1

    async def _gossip_pump(self, gossip: TxGossip) -> None:
        async for batch in gossip.incoming:
            for tx in batch:
                try:
                    self.admission.hold(self._mempool, tx)
                except TxRejected as error:  # mostly duplicates
                    self._count_refused(error)

    async def _rebroadcast_loop(self, gossip: TxGossip) -> None:
        while True:
            await trio.sleep(self.rebroadcast.interval_ms / 1000)
            for tx in self.rebroadcast.due(self.clock.now_ms(), self._mempool.__contains__):
                gossip.publish(tx)

    def _on_commit(self, block: Block, execution: BlockExecution) -> None:
        self._ledger_time_ms = execution.time_ms
        self._mempool.committed(block.txs, lambda sender: next_nonce(self._store, sender))
        log.debug("block committed", height=block.height, txs=len(block.txs))
