"""The daemon: one site's ``NodeCore`` driven by libp2p, a clock and the local RPC, under trio.

A node is a validator while its key is in the validator set of the current epoch, and an
observer otherwise: a site whose key is not in genesis.json (config ``role = "observer"``),
one voted in whose epoch has not begun, or one voted out. The set changes by vote
(``p2pmed.ledger.contracts.membership``); the node follows it at each epoch's first block
(``_on_epoch``): the transport's peers, the dialers and the gossip mesh become the new set's,
and the core starts or stops its replica. Tasks, all in one nursery inside ``host.run``:

- the consensus pump: frames from ``ConsensusTransport`` (``/p2pmed/pbft/1``) go to
  ``core.receive``;
- the follower, while the node is outside the set: asks the validators for committed
  blocks over ``/p2pmed/blocks/1`` and takes those a quorum of their epoch's set certified
  (``p2pmed.node.follower``);
- the gossip pump: transaction batches from ``TxGossip`` go to ``core.submit``;
- the timer: sleeps until ``core.next_deadline_ms()`` and calls ``core.tick``;
- the rebroadcaster: gossips again our clients' transactions still waiting after a
  second (``p2pmed.node.rebroadcast``);
- one dialer per validator of the current set, keeping a connection up with capped
  backoff (gossipsub only meshes with connected peers; the transport dials on its own);
- the block sync service (``/p2pmed/blocks/1``): committed blocks with their
  certificates for observers and other admitted peers (``p2pmed.node.publishers``);
- the custodian's blob service (``/p2pmed/blob/2``) for the validators' nodes, and repair;
- the JSON-RPC server on ``<home>/p2pmed.sock``;
- the Prometheus endpoint on 127.0.0.1:<[metrics] port>, when the port is not 0.

Every call into ``NodeCore`` is synchronous and runs on the trio thread, so calls
never interleave and each leaves the store consistent; cancellation (SIGINT,
SIGTERM) can only land between them. Each call returns the messages to send,
which go into the transport's bounded per-peer queues without blocking. After
each call the timer is woken, since the next deadline may have moved earlier,
and a change of view is logged (the replica, being pure, logs nothing itself).

Every read RPC method and the CLI work alike on validators and observers, from the node's
own store; an observer relays its clients' transactions by gossip (the validators must
admit its peer id as a publisher) and refuses ``record.store`` and ``record.fetch``: only
validators reach the custodians.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, assert_never

import multiaddr
import structlog
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID

from p2pmed.consensus import ViewPhase
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.messages import BlockWithCertificate
from p2pmed.consensus.replica import Replica, ReplicaConfig
from p2pmed.ledger.block import Block
from p2pmed.ledger.contracts import ALL_TX_TYPES, membership
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.machine import BlockExecution, Ledger
from p2pmed.ledger.tx import Transaction
from p2pmed.net import ConsensusTransport, GossipCounters, TransportCounters, peer_id_of
from p2pmed.net.blob_protocol import BlobClient, BlobRequest, BlobResponse, BlobService, refused
from p2pmed.net.block_sync import BlockSyncClient, BlockSyncService, SyncAnswer
from p2pmed.net.faults import FaultInjector
from p2pmed.net.host import node_host
from p2pmed.net.identity import ed25519_key_of
from p2pmed.net.snapshot_sync import SnapshotService
from p2pmed.net.tx_gossip import TxGossip
from p2pmed.node import snapshots
from p2pmed.node.api.port import BlockListener, Traffic
from p2pmed.node.core import NodeCore, Outgoing, StorageFailed, leaf_errors
from p2pmed.node.custodian import Custodian
from p2pmed.node.dialer import keep_connected
from p2pmed.node.follower import ChainFollower
from p2pmed.node.mempool import Mempool
from p2pmed.node.metrics import NodeMetrics
from p2pmed.node.metrics_http import serve_metrics
from p2pmed.node.publishers import admitted_peers
from p2pmed.node.rebroadcast import Rebroadcast
from p2pmed.node.repair import BlobRepair
from p2pmed.node.seats import Seat, neighbours, seats
from p2pmed.node.site_audit import LOG_FILE, SiteAudit
from p2pmed.rpc.server import RpcCounters, RpcServer
from p2pmed.site.home import LoadedHome
from p2pmed.store import Store
from p2pmed.store.audit_log import SignedLog
from p2pmed.store.blobs import BlobStore

__all__ = ["Node", "NodeClock", "replica_config"]

log = structlog.get_logger(__name__)

GOSSIP_FLUSH_INTERVAL_S = 0.04
"""At most 25 gossip batches a second from a node: each costs every peer far more CPU
than the transactions in it, so under load batches grow instead (p2pmed bench:
20 ms or 80 ms were both slower at some rate from 100 to 800 tx/s)."""
RECEIVE_BATCH_MAX = 64
"""Consensus messages already waiting that are handled together, under one fsync."""
OTHER_PEERS_LISTED_MAX = 1_000


class NodeClock:
    """Milliseconds since 1970 that never go backwards: the wall clock is read once,
    then advanced by the monotonic clock, so timeouts survive wall-clock jumps and
    block times still read as dates."""

    def __init__(self) -> None:
        self._wall_ms = time.time_ns() // 1_000_000
        self._monotonic_ns = time.monotonic_ns()

    def now_ms(self) -> int:
        return self._wall_ms + (time.monotonic_ns() - self._monotonic_ns) // 1_000_000


def replica_config(home: LoadedHome) -> ReplicaConfig:
    config = home.config
    return ReplicaConfig(
        batch_size_max=config.batch_size_max,
        block_bytes_max=config.block_bytes_max,
        block_time_skew_max_ms=config.block_time_skew_max_ms,
        batch_delay_ms=config.batch_delay_ms,
        checkpoint_interval=config.checkpoint_interval,
        watermark_window=config.watermark_window,
        heartbeat_interval_ms=config.heartbeat_interval_ms,
        request_timeout_ms=config.request_timeout_ms,
        view_change_timeout_ms=config.view_change_timeout_ms,
        pipeline_max=config.pipeline_max,
    )


@dataclass
class NodeCounters:
    gossip_txs_refused: Counter[str] = field(default_factory=Counter)


class Node:
    def __init__(self, home: LoadedHome, clock: NodeClock | None = None) -> None:
        self.home = home
        self.clock = clock or NodeClock()
        self.started_ms = self.clock.now_ms()
        genesis = home.genesis
        self.chain_id = genesis.chain_id
        self.core = NodeCore(
            home.store_path,
            Ledger(genesis.chain_id, ALL_TX_TYPES, genesis.ledger_state()),
            home.key,
            replica_config(home),
            self.started_ms,
            genesis.hash,
            probes_from_anyone=home.config.probes_from_anyone,
            snapshot_interval=home.config.snapshot_interval_blocks,
        )
        self.core.epoch_listeners.append(self._on_epoch)
        self.follower = ChainFollower(
            self.core.store, lambda: self.core.validators, self._take_synced, lambda: self.core.replica is None
        )
        self.counters = NodeCounters()
        self.rebroadcast = Rebroadcast()
        self.block_listeners: list[BlockListener] = self.core.commit_listeners
        self.block_listeners.append(self._log_commit)
        self.block_listeners.append(self._on_change_passed)
        self.site_audit = SiteAudit(
            SignedLog(home.store_path.parent / LOG_FILE, home.key, genesis.chain_id, self.clock.now_ms),
            self.clock.now_ms,
            genesis.chain_id,
        )
        self.custodian = Custodian(
            self.core.store,
            lambda: self.core.ledger_time_ms,
            BlobStore(home.store_path.parent / "blobs"),
            home.key.public_key,
            home.encryption_key,
            genesis.chain_id,
            self.site_audit.custody_refused,
        )
        self.block_listeners.append(self._erase_on_commit)
        self.blob_client: BlobClient | None = None
        self.block_sync: BlockSyncService | None = None
        self.snapshot_service: SnapshotService | None = None
        self.repair = BlobRepair(self.custodian, self.ask_custodian)
        self.repair.scan(self.core.store)
        self.block_listeners.append(self.repair.on_commit)
        self.metrics = NodeMetrics(self)
        self.host: IHost | None = None
        self.transport: ConsensusTransport | None = None
        self.gossip: TxGossip | None = None
        self.rpc_server: RpcServer | None = None
        self._view_logged = self._view_state()
        self._timer_wakeup = trio.Event()
        self.faults = FaultInjector(seed=self.started_ms) if home.config.fault_injection else None
        self._nursery: trio.Nursery | None = None
        self._dialers: dict[ID, trio.CancelScope] = {}
        self._validator_peers: dict[ID, bytes] = {}
        """The current set's peer ids, each with its validator key."""
        self._latest_epoch = -1
        self._neighbours: dict[ID, bytes] = {}
        """The other validators of the recent epochs (``seats.neighbours``), each with its key."""
        self._neighbour_ids: dict[bytes, ID] = {}
        """The same, by key: every frame sent and received names one, and deriving a peer id
        from a key (or back) costs microseconds a message."""
        self._note_validators()

    # -- what RPC methods and metrics read (``p2pmed.node.api.port.NodePort``) ------

    @property
    def index(self) -> int | None:
        """This node's position in the current validator set; None outside it."""
        return self.core.replica.index if self.core.replica is not None else None

    @property
    def node_key(self) -> bytes:
        return self.home.key.public_key

    @property
    def peer_height(self) -> int | None:
        if self.core.replica is not None:
            return self.core.replica.catching_up_to
        head = self.follower.validators_head
        return head if head > self.follower.height else None

    @property
    def moniker(self) -> str:
        return self.home.config.moniker

    @property
    def validators(self) -> tuple[Seat, ...]:
        return seats(self.core.store)

    @property
    def epoch(self) -> int:
        return self.core.validators.epoch

    @property
    def peer_ids(self) -> list[ID]:
        return list(self._validator_peers)

    @property
    def store(self) -> Store:
        return self.core.store

    @property
    def store_path(self) -> Path:
        return self.home.store_path

    @property
    def replica(self) -> Replica | None:
        return self.core.replica

    @property
    def mempool(self) -> Mempool:
        return self.core.mempool

    @property
    def ledger_time_ms(self) -> int:
        return self.core.ledger_time_ms

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def traffic(self) -> Traffic:
        server = self.rpc_server
        return Traffic(
            transport=self.transport.counters if self.transport is not None else TransportCounters(),
            gossip=self.gossip.counters if self.gossip is not None else GossipCounters(),
            gossip_txs_refused=self.counters.gossip_txs_refused,
            gossip_txs_rebroadcast=self.rebroadcast.resent,
            consensus_sent=self.core.sent,
            rpc=server.counters if server is not None else RpcCounters(),
            rpc_connections=server.connections if server is not None else 0,
            block_sync_served=self.block_sync.served if self.block_sync is not None else {},
            snapshot_served=self.snapshot_service.served if self.snapshot_service is not None else {},
            block_sync_fetched=self.follower.counters,
            consensus_strangers=self.core.refused_senders,
        )

    # -- what RPC methods call ------------------------------------------------

    def submit(self, tx: Transaction) -> None:
        """A client transaction: check it, queue it for consensus and gossip it to the
        other nodes. Raises ``TxRejected`` with the reason when it cannot be taken."""
        assert self.gossip is not None, "the node is not running"
        # Checked before the core takes it: a transaction held here that the others never
        # receive would make this node suspect an honest primary and start a view change.
        if len(tx.encoded) > self.gossip.tx_size_max:
            raise TxRejected(
                RejectReason.TOO_BIG,
                f"{len(tx.encoded)} bytes; transactions travel between nodes in batches of at most "
                f"{self.gossip.tx_size_max} bytes",
            )
        now_ms = self.clock.now_ms()
        self._send(self.core.submit(tx, now_ms))
        self.metrics.submitted(tx.id)
        self.gossip.publish(tx)
        self.rebroadcast.sent(tx, now_ms)

    def connected_validators(self) -> list[int]:
        connected = self._connected()
        return [
            index
            for index, peer_id in enumerate(self._validator_peers)
            if peer_id in connected and peer_id != self._own_peer_id
        ]

    def connected_others(self) -> list[ID]:
        return [peer for peer in self._connected() if peer not in self._validator_peers][:OTHER_PEERS_LISTED_MAX]

    async def ask_custodian(self, custodian: bytes, request: BlobRequest) -> BlobResponse:
        """The answer of the custodian whose key is ``custodian``: this site's own, or a
        validator's over ``/p2pmed/blob/2`` (custodians serve validators' nodes only)."""
        if self.core.replica is None:
            return refused("this node is not a validator: custodians serve records through a validator's node")
        if custodian == self.home.key.public_key:
            return self.custodian.answer(request, self.home.key.public_key)
        assert self.blob_client is not None, "asked before the network is up"
        return await self.blob_client.request(peer_id_of(custodian), request)

    # -- running ----------------------------------------------------------------

    async def run(
        self, *, rpc_server: Callable[[Node], RpcServer] | None = None, task_status: Any = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; then close the store. ``rpc_server`` builds the
        RPC server (``p2pmed.node.api.server``), left out by tests that need no socket."""
        host = self.host = node_host(self.home.key)
        listen = multiaddr.Multiaddr(self.home.config.listen)
        try:
            async with trio.open_nursery() as outer:  # open before host.run (see DESIGN.md)
                async with host.run(listen_addrs=[listen]):
                    async with trio.open_nursery() as nursery:
                        await self._start(host, nursery, rpc_server)
                        log.info(
                            "node started",
                            chain=self.chain_id,
                            role=self._role(),
                            peer_id=str(host.get_id()),
                            listen=str(listen),
                            **self._position(),
                        )
                        task_status.started()
                outer.cancel_scope.cancel()
        except* StorageFailed as failed:
            log.critical("node stopping: a store write failed", error=str(leaf_errors(failed)[0]))
            raise
        finally:
            height = self.core.store.head()[0]
            self.site_audit.close()
            self.core.close()
            log.info("node stopped", height=height)

    async def _start(self, host: IHost, nursery: trio.Nursery, rpc_server: Callable[[Node], RpcServer] | None) -> None:
        self._nursery = nursery
        self.transport = ConsensusTransport(host, [])
        await nursery.start(self.transport.run)
        # Validators of the recent epochs too: one voted in syncs before its epoch begins.
        admitted = admitted_peers(
            self.home.config, lambda peer: peer in self._neighbours or peer == host.get_id(), self.store
        )
        self.gossip = TxGossip(
            host,
            self.chain_id,
            self._accept_gossiped,
            flush_interval=GOSSIP_FLUSH_INTERVAL_S,
            admitted=admitted,
            unbudgeted=self._is_validator,
            full_mesh=self._is_validator,
        )
        await nursery.start(self.gossip.run)
        self._keep_neighbours_connected()
        await nursery.start(BlobService(host, self._answer_peer, self._is_other_validator).run)
        self.block_sync = BlockSyncService(host, self._blocks_from, admitted)
        await nursery.start(self.block_sync.run)
        store = self.core.store
        self.snapshot_service = SnapshotService(
            host, lambda: snapshots.offer(store), functools.partial(snapshots.entries, store), admitted
        )
        await nursery.start(self.snapshot_service.run)
        self.blob_client = BlobClient(host)
        await nursery.start(self.repair.run)
        nursery.start_soon(self._consensus_pump, self.transport)
        nursery.start_soon(self.follower.run, BlockSyncClient(host), self._other_validators, self._connected)
        nursery.start_soon(self._gossip_pump, self.gossip)
        nursery.start_soon(self._timer)
        nursery.start_soon(self._rebroadcast_loop, self.gossip)
        self._send(self.core.start())
        if rpc_server is not None:
            self.rpc_server = rpc_server(self)
            await nursery.start(self.rpc_server.run)
        if self.home.config.metrics_port:
            await nursery.start(serve_metrics, self.metrics.registry, self.home.config.metrics_port)

    # -- the validator set ----------------------------------------------------------

    @property
    def _own_peer_id(self) -> ID:
        return peer_id_of(self.home.key.public_key)

    def _note_validators(self) -> None:
        self._validator_peers = {peer_id_of(key): key for key in self.core.validators.keys}

    def _is_validator(self, peer: ID) -> bool:
        """Of the current set (read at each call: the set changes by epoch)."""
        return peer in self._validator_peers

    def _other_validators(self) -> list[ID]:
        return [peer_id for peer_id in self._validator_peers if peer_id != self._own_peer_id]

    def _is_other_validator(self, peer: ID) -> bool:
        return peer in self._validator_peers and peer != self._own_peer_id

    def _on_epoch(self, validators: Validators) -> None:
        """A new epoch began (called by the core, on the trio thread): follow its set."""
        self._note_validators()
        self._keep_neighbours_connected()
        log.info("epoch started", validators=validators.n, role=self._role(), **self._position())

    def _on_change_passed(self, block: Block, execution: BlockExecution) -> None:
        """After each block: once a change of the set passes, get in touch with the newcomers."""
        latest = membership.latest_epoch(self.core.store)
        if latest is not None and latest.number != self._latest_epoch:
            self._keep_neighbours_connected()

    def _keep_neighbours_connected(self) -> None:
        """The transport's peers and one dialer each: the other validators of the recent epochs
        (``seats.neighbours``), at the addresses their sets list."""
        latest = membership.latest_epoch(self.core.store)
        self._latest_epoch = -1 if latest is None else latest.number
        if self.host is None or self._nursery is None or self.transport is None:
            return  # not running yet: ``_start`` calls this again
        wanted = {peer_id_of(seat.key): seat for seat in neighbours(self.core.store) if seat.key != self.node_key}
        self._neighbours = {peer_id: seat.key for peer_id, seat in wanted.items()}
        self._neighbour_ids = {key: peer_id for peer_id, key in self._neighbours.items()}
        self.transport.set_validators(list(wanted))
        for peer_id in [peer_id for peer_id in self._dialers if peer_id not in wanted]:
            self._dialers.pop(peer_id).cancel()
        for peer_id, seat in wanted.items():
            if peer_id in self._dialers:
                continue
            address = multiaddr.Multiaddr(seat.address)
            self.host.get_peerstore().add_addrs(peer_id, [address], 0)  # ttl 0: permanent
            scope = self._dialers[peer_id] = trio.CancelScope()
            self._nursery.start_soon(self._dial, scope, peer_id, address, seat.moniker)

    async def _dial(self, scope: trio.CancelScope, peer_id: ID, address: multiaddr.Multiaddr, moniker: str) -> None:
        assert self.host is not None
        with scope:
            await keep_connected(self.host, peer_id, address, self._connection_logger(moniker))

    def _role(self) -> str:
        return "validator" if self.core.replica is not None else "observer"

    def _connected(self) -> set[ID]:
        return set(self.host.get_connected_peers()) if self.host is not None else set()

    # -- pumps ------------------------------------------------------------------------

    def _accept_gossiped(self, tx: Transaction) -> bool:
        try:
            return self.core.admit(tx)
        except TxRejected as error:
            self.counters.gossip_txs_refused[error.reason.value] += 1
            return False

    async def _consensus_pump(self, transport: ConsensusTransport) -> None:
        async for first in transport.incoming:
            arrived = [first]
            while len(arrived) < RECEIVE_BATCH_MAX:
                try:
                    arrived.append(transport.incoming.receive_nowait())
                except trio.WouldBlock:
                    break
            # The transport admits only the recent epochs' validators; one that just left still
            # has its key in its peer id, and the core counts it as a stranger.
            messages = [(self._neighbours.get(peer) or ed25519_key_of(peer), data) for peer, data in arrived]
            known = [(key, data) for key, data in messages if key is not None]
            if self.faults is not None:
                known = [(key, data) for key, data in known if self._faults_admit(key)]
            self._send(self.core.receive_many(known, self.clock.now_ms()))

    def _take_synced(self, item: BlockWithCertificate) -> None:
        self._send(self.core.apply_synced(item))

    async def _gossip_pump(self, gossip: TxGossip) -> None:
        async for batch in gossip.incoming:
            outgoing, refused = self.core.submit_many(batch, self.clock.now_ms())
            for error in refused:  # mostly duplicates: a client sent it to several nodes
                self.counters.gossip_txs_refused[error.reason.value] += 1
            self._send(outgoing)

    async def _timer(self) -> None:
        while True:
            self._timer_wakeup = trio.Event()
            delay_ms = self.core.next_deadline_ms() - self.clock.now_ms()
            if delay_ms > 0:
                with trio.move_on_after(delay_ms / 1000):
                    await self._timer_wakeup.wait()
            now_ms = self.clock.now_ms()
            if now_ms >= self.core.next_deadline_ms():
                self._send(self.core.tick(now_ms))

    async def _rebroadcast_loop(self, gossip: TxGossip) -> None:
        while True:
            await trio.sleep(self.rebroadcast.interval_ms / 1000)
            for tx in self.rebroadcast.due(self.clock.now_ms(), self.core.mempool.__contains__):
                gossip.publish(tx)

    def _connection_logger(self, moniker: str) -> Callable[[bool], None]:
        def logged(connected: bool) -> None:
            log.info("peer connected" if connected else "peer disconnected", peer=moniker, **self._position())

        return logged

    def _faults_admit(self, key: bytes) -> bool:
        assert self.faults is not None
        return key not in self.core.validators.keys or self.faults.admits(self._index_of(key))

    def _index_of(self, key: bytes) -> int:
        """A validator's position in the current set (what the fault injector's rules name)."""
        return self.core.validators.keys.index(key)

    def _send(self, outgoing: Outgoing) -> None:
        """After each call into the core: send what it returned, wake the timer, log a view change."""
        assert self.transport is not None
        for key, data in outgoing:
            peer_id = self._neighbour_ids.get(key) or peer_id_of(key)
            if self.faults is None or key not in self.core.validators.keys:
                self.transport.send(peer_id, data)
                continue
            delay = self.faults.outgoing_delay(self._index_of(key))
            if delay == 0:
                self.transport.send(peer_id, data)
            elif delay is not None and self._nursery is not None:
                self.faults.delayed += 1
                self._nursery.start_soon(self._send_later, peer_id, data, delay)
        self._timer_wakeup.set()
        self._log_view_change()

    async def _send_later(self, peer_id: ID, data: bytes, delay: float) -> None:
        assert self.transport is not None and self.faults is not None
        await trio.sleep(delay)
        self.faults.delayed -= 1
        self.transport.send(peer_id, data)

    # -- logging -------------------------------------------------------------------

    def _position(self) -> dict[str, int]:
        """Where this node stands, for log events."""
        replica = self.core.replica
        position = {"height": self.core.store.head()[0], "epoch": self.core.validators.epoch}
        return position if replica is None else {**position, "view": replica.view}

    def _view_state(self) -> tuple[int, int, ViewPhase] | None:
        replica = self.core.replica
        return None if replica is None else (self.core.validators.epoch, replica.view, replica.view_phase)

    def _log_view_change(self) -> None:
        state = self._view_state()
        if state == self._view_logged:
            return
        self._view_logged = state
        replica = self.core.replica
        if replica is None:
            return
        match replica.view_phase:
            case ViewPhase.ACTIVE:
                log.info("view entered", primary=replica.primary, **self._position())
            case ViewPhase.CHANGING:
                log.info("view change started", started=replica.view_changes_started, **self._position())
            case _:
                assert_never(replica.view_phase)

    def _blocks_from(self, from_height: int) -> SyncAnswer:
        """What ``/p2pmed/blocks/1`` answers: the committed blocks from ``from_height`` on."""
        served = self.core.blocks_from(from_height)
        return SyncAnswer("", self.core.store.head()[0], served.blocks, served.more)

    def _answer_peer(self, request: BlobRequest, peer: ID) -> BlobResponse:
        """The custodian's answer to a validator's node (BlobService serves validators only)."""
        return self.custodian.answer(request, self._validator_peers[peer])

    def _erase_on_commit(self, block: Block, execution: BlockExecution) -> None:
        """Crypto-shred what the patient had erased, as soon as the erasure commits here."""
        for tx, result in zip(block.txs, execution.results, strict=True):
            if tx.type == "record.erase" and result.ok and self.custodian.erase(tx.body["record_id"]):
                log.info("record erased", record=tx.body["record_id"].hex()[:16], height=block.height)

    def _log_commit(self, block: Block, execution: BlockExecution) -> None:
        rejected = sum(not result.ok for result in execution.results)
        log.debug("block committed", **self._position(), txs=len(block.txs), rejected=rejected)
