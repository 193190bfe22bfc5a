"""Transaction gossip: batches of signed transactions over GossipSub.

Wire format, in short (docs/wire.md has it all for a Go, JS or Rust peer, with a
worked example checked by the tests; ``tests/js/tx_peer.mjs`` is a js-libp2p peer
written from it):

- Topic ``/p2pmed/<chain_id>/tx/1`` (``tx_topic``), GossipSub ``/meshsub/1.2.0``
  or ``/meshsub/1.1.0``. Messages are signed (StrictSign: ``from``, ``seqno`` and
  ``signature`` set, and ``key`` unless the peer id inlines it, as the libp2p
  pubsub spec says); unsigned ones are dropped.
- The message id is the libp2p default, ``from`` followed by ``seqno``, so a
  batch published again is a new message (``p2pmed.node.rebroadcast`` relies on it);
  the node drops transactions it already holds.
- ``message.data`` is the canonical CBOR (RFC 8949 §4.2.1, see
  ``p2pmed.codec``) of a ``TxBatch``, at most ``batch_bytes_max`` bytes
  (512 KiB unless configured otherwise)::

      TxBatch     = {"txs": [+ Transaction]}          ; exactly this one key
      Transaction = {"type": tstr, "chain_id": tstr, "sender": bstr .size 32,
                     "nonce": uint, "body": {* tstr => any}, "signature": bstr .size 64}

  ``Transaction`` is ``p2pmed.ledger.tx.Transaction``: ``sender`` is an
  Ed25519 public key, ``signature`` is its signature over the other five
  fields (domain-separated, see ``p2pmed.crypto``). A transaction's id is the
  SHA-256 of its own canonical encoding, which appears verbatim inside the batch.
- Every transaction carries the topic's chain id and passes the node's
  ``accept`` check (format and signature). A batch with any bad transaction
  is rejected as a whole and not forwarded: only a faulty publisher sends one.

Sending: ``publish(tx)`` never blocks. Transactions wait in a bounded pending
queue (the oldest is dropped and counted when it is full); a flusher task
publishes a batch when ``batch_txs_max`` transactions or ``batch_bytes_max``
bytes are pending, and otherwise at most once per ``flush_interval``: at once
when the last batch left longer ago than that (a lone transaction waits for
nothing), else when the interval is up. Each gossip message costs every node
far more CPU than the transactions in it (py-libp2p relays it, encrypts and
frames it per peer), so under load batches grow instead of messages multiplying.

Any peer that subscribes receives every batch: validators straight from each
publisher, everyone else relayed (see ``_SmallMeshGossipSub``), so an observer or a
client in another language needs a link to one node only.

Receiving: a topic validator checks every message, on receivers and (as
py-libp2p does) on the publisher, cheapest first: that its publisher is admitted
(``admitted``: the daemon admits the validators, the peers ``[p2p] gossip_peers``
lists and, with ``gossip_publishers = "organisations"``, organisations' nodes; or
anyone, with ``any``), size, the publisher's byte budget (``publisher_bytes_per_s``; the
``unbudgeted`` ones, the validators in the daemon, carry every client's
transactions and have none), strict decoding, chain id, ``accept`` for each
transaction. A peer that forwards rejected batches faster than
``REJECTIONS_PER_S`` beyond a burst of ``REJECTIONS_BURST`` is disconnected
(``peers_disconnected``); it may dial again, and starts with a full allowance
(an honest relay's occasional bad batch costs it nothing). The ``unbudgeted``
peers (the validators) are never disconnected for it. Accepted batches from other peers go to ``incoming``, a
bounded channel of transaction tuples; our own never come back. A consumer that
falls behind loses whole batches, counted, rather than stalling the pubsub
service; gossip is best effort and consensus fetches what it misses.

py-libp2p 0.8.1 drops messages silently in a few places (see DESIGN.md). What
this module does about each:

- spam protection (10 messages/s per peer) and adaptive gossip (which stretches
  a short heartbeat to 30-60 s when it rates the network unhealthy) are off;
- the per-peer outbound queue (32 RPCs, not configurable): before each batch
  the flusher waits while a mesh peer's queue is over half full, for at most
  ``outbound_wait_max``; a peer still that full is then left behind (the batch
  is counted as congested) and not waited for again until its queue drains,
  so one slow peer cannot slow the topic down for everyone;
- the subscription channel (32 messages, not configurable): the receiver task
  only moves batches from it to ``incoming`` and never waits on the consumer.

The signed peer record py-libp2p attaches to every RPC is verified once per
peer, not once per RPC (``p2pmed.net.peer_records``).

And one crash: while a Pubsub service stops, its task nursery closes before
``manager.is_running`` turns false, so a message read in that window from a
still-open connection makes ``run_task`` raise and takes the host's swarm down
(``tools/anyio_service/trio_manager.py``, ``_schedule_task``; called from
``pubsub.py``, ``continuously_read_stream``). ``run`` therefore unsubscribes
first: py-libp2p skips messages for topics it is not subscribed to before
scheduling anything. (A peer's new subscription or a failing pubsub stream
still schedules a task in that window; stopping the host first closes it.)
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog
import trio
from libp2p.abc import IHost, INetStream, ISubscriptionAPI
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, PROTOCOL_ID_V12, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import DefaultMaxMessageSize, OutBoundQueueSize
from libp2p.tools.anyio_service import background_trio_service

from p2pmed import codec
from p2pmed.ledger.tx import CHAIN_ID_LENGTH_MAX, Transaction
from p2pmed.net import peer_records
from p2pmed.token_bucket import PeerBudgets

__all__ = ["REJECT_REASONS", "GossipCounters", "TxBatch", "TxGossip", "tx_topic"]

log = structlog.get_logger(__name__)

REJECT_REASONS = ("not_admitted", "over_budget", "too_big", "malformed", "bad_tx")

# CBOR around the transactions of a batch: map(1) "txs" array(n) = 1 + 4 + at most 5 bytes.
BATCH_OVERHEAD_MAX = 10
# py-libp2p refuses to send or receive an RPC bigger than 1 MiB; leave room for the
# envelope (from, seqno, signature, key, sender record, piggybacked control).
BATCH_BYTES_LIMIT = DefaultMaxMessageSize - (64 << 10)
# The flusher holds back while a peer's outbound queue is fuller than this.
OUTBOUND_QUEUE_PAUSE = OutBoundQueueSize // 2
OUTBOUND_POLL_INTERVAL = 0.002  # seconds; py-libp2p's queue signals no "drained" event
UNSUBSCRIBE_TIMEOUT = 2.0  # seconds; unsubscribing only queues messages, so it takes far less
# Publishers whose byte budget is remembered; the least recently seen is forgotten first.
PUBLISHERS_TRACKED_MAX = 10_000
REJECTIONS_PER_S = 1.0
REJECTIONS_BURST = 32
# Batches accepted by the validator, kept for the receiver so it does not decode them again.
ACCEPTED_BATCHES_MAX = 4 * OutBoundQueueSize


def tx_topic(chain_id: str) -> str:
    """The GossipSub topic carrying ``chain_id``'s transactions."""
    return f"/p2pmed/{chain_id}/tx/1"


def _batch_key(message: rpc_pb2.Message) -> bytes:
    """Which validated batch a delivered message carries."""
    return hashlib.sha256(message.data).digest()


@dataclasses.dataclass(frozen=True)
class TxBatch:
    """What one gossip message carries."""

    txs: tuple[Transaction, ...]

    def __post_init__(self) -> None:
        if not self.txs:
            raise ValueError("a batch holds at least one transaction")


@dataclasses.dataclass
class GossipCounters:
    """Monotonic counters for metrics and tests."""

    batches_published: int = 0
    txs_published: int = 0
    batches_published_congested: int = 0  # a mesh peer's outbound queue stayed half full: libp2p may drop them
    batches_received: int = 0  # accepted, from other peers
    txs_received: int = 0
    batches_dropped: int = 0  # received and accepted, but ``incoming`` was full
    txs_dropped: int = 0  # never published: pushed out of a full pending queue, or published after stop
    streams_failed: int = 0  # inbound pubsub streams ended by an error reading them (malformed RPCs)
    peers_disconnected: int = 0  # forwarders of rejected batches over REJECTIONS_PER_S
    batches_rejected: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(REJECT_REASONS, 0))


class TxGossip:
    """Gossips this node's transactions in batches and hands over other peers' batches.

    ``accept(tx)`` is the node's admission check (format, signature). It is
    called for each transaction ``publish`` is given and for each transaction
    of every batch validated, our own included, so it should remember the ids
    it verified. It must return False for a bad transaction, never raise.

    Owns a GossipSub router and a Pubsub on ``host`` (``router``, ``pubsub``:
    for status and tests). Build it right before ``run`` and start it before
    dialing anyone: from construction until the pubsub service runs, py-libp2p's
    connection notifee waits on an unbuffered channel and stalls every new
    connection of the host. Start ``run`` with ``await nursery.start(gossip.run)``
    once inside ``host.run``, in a nursery opened before ``host.run`` (as
    DESIGN.md advises): then at shutdown the host's connections close before
    the pubsub service stops (see the crash in the module docstring). Cancel it
    to stop.
    """

    def __init__(
        self,
        host: IHost,
        chain_id: str,
        accept: Callable[[Transaction], bool],
        *,
        batch_txs_max: int = 500,
        batch_bytes_max: int = 512 << 10,
        flush_interval: float = 0.005,
        pending_txs_max: int = 20_000,
        pending_bytes_max: int = 64 << 20,
        inbox_size: int = 256,
        outbound_wait_max: float = 1.0,
        admitted: Callable[[ID], bool] | None = None,
        unbudgeted: Callable[[ID], bool] | None = None,
        full_mesh: Callable[[ID], bool] | None = None,
        publisher_bytes_per_s: float = 16 << 20,
    ) -> None:
        if not 0 < len(chain_id) <= CHAIN_ID_LENGTH_MAX:
            raise ValueError(f"chain_id must be 1..{CHAIN_ID_LENGTH_MAX} characters")
        if batch_txs_max < 1 or not BATCH_OVERHEAD_MAX < batch_bytes_max <= BATCH_BYTES_LIMIT:
            raise ValueError(
                f"a batch holds at least 1 transaction and {BATCH_OVERHEAD_MAX + 1}..{BATCH_BYTES_LIMIT} bytes"
            )
        if pending_txs_max < 1 or pending_bytes_max < batch_bytes_max:
            raise ValueError("the pending queue must hold at least one transaction of the biggest size")
        if flush_interval < 0 or outbound_wait_max < 0 or inbox_size < 1:
            raise ValueError("flush_interval and outbound_wait_max must be >= 0, inbox_size >= 1")
        self.host = host
        self.chain_id = chain_id
        self.topic = tx_topic(chain_id)
        self.accept = accept
        self.batch_txs_max = batch_txs_max
        self.batch_bytes_max = batch_bytes_max
        self.flush_interval = flush_interval
        self.pending_txs_max = pending_txs_max
        self.pending_bytes_max = pending_bytes_max
        self.outbound_wait_max = outbound_wait_max
        self.admitted = admitted
        self.unbudgeted = unbudgeted
        self.publisher_bytes_per_s = publisher_bytes_per_s
        self._budgets: PeerBudgets[ID] = PeerBudgets(publisher_bytes_per_s, 2 * batch_bytes_max, PUBLISHERS_TRACKED_MAX)
        self._rejections: PeerBudgets[ID] = PeerBudgets(REJECTIONS_PER_S, REJECTIONS_BURST, PUBLISHERS_TRACKED_MAX)
        self._disconnect_send, self._disconnect_receive = trio.open_memory_channel[ID](REJECTIONS_BURST)
        self.counters = GossipCounters()
        self.router = _new_router(full_mesh or _nobody)
        peer_records.install()
        self.pubsub = Pubsub(
            host,
            self.router,
            strict_signing=True,
            allowed_topics={self.topic},
        )
        self.pubsub.set_topic_validator(self.topic, self._validate, is_async_validator=False)
        for protocol in self.router.get_protocols():  # replaces Pubsub's own handler (see _read_peer)
            host.set_stream_handler(protocol, self._read_peer)
        # Message ids are publisher + seqno. py-libp2p starts the seqno at the time in
        # seconds and adds one per message, so a node restarted after fewer seconds than
        # it had published messages reused seqnos its peers still remembered as seen, and
        # they dropped its batches for two minutes. Nanoseconds, as go-libp2p does.
        self.pubsub.counter = time.time_ns()
        self._own_id = host.get_id().to_bytes()
        self._pending: collections.deque[Transaction] = collections.deque()
        self._pending_bytes = 0
        self._wakeup = trio.Event()
        self._slow_peers: set[ID] = set()
        self._accepted: dict[bytes, TxBatch] = {}  # by message id, oldest first
        self._inbox_send, self.incoming = trio.open_memory_channel[tuple[Transaction, ...]](inbox_size)
        self._started = False
        self._stopped = False

    # -- sending -----------------------------------------------------------------

    def publish(self, tx: Transaction) -> None:
        """Queue ``tx`` for the next batch; never blocks.

        Raises ``ValueError`` for a transaction that would spoil its whole
        batch: another chain's, one ``accept`` refuses, or one too big to fit
        in a batch.
        """
        size = len(tx.encoded)
        if size > self.tx_size_max:
            raise ValueError(f"transaction of {size} bytes does not fit in a {self.batch_bytes_max}-byte batch")
        if not self._tx_is_acceptable(tx):
            raise ValueError(f"transaction {tx.id.hex()[:16]} is refused: it would get its whole batch rejected")
        if self._stopped:
            self.counters.txs_dropped += 1
            return
        self._pending.append(tx)
        self._pending_bytes += size
        while len(self._pending) > self.pending_txs_max or self._pending_bytes > self.pending_bytes_max:
            self._pending_bytes -= len(self._pending.popleft().encoded)
            self.counters.txs_dropped += 1
        self._wakeup.set()

    @property
    def tx_size_max(self) -> int:
        """The largest transaction a batch can carry, so the largest this node can pass on."""
        return self.batch_bytes_max - BATCH_OVERHEAD_MAX

    def pending(self) -> int:
        """How many transactions wait for a batch."""
        return len(self._pending)

    def _batch_is_full(self) -> bool:
        return (
            len(self._pending) >= self.batch_txs_max or self._pending_bytes + BATCH_OVERHEAD_MAX >= self.batch_bytes_max
        )

    async def _flush_loop(self) -> None:
        last_published = -math.inf
        while True:
            if not self._pending:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
            with trio.move_on_at(last_published + self.flush_interval):
                while not self._batch_is_full():
                    self._wakeup = trio.Event()
                    await self._wakeup.wait()
            last_published = trio.current_time()
            congested = not await self._wait_for_outbound_room()
            await self._publish_batch(congested)
            await trio.lowlevel.checkpoint()  # publishing does not yield; let the senders write

    async def _wait_for_outbound_room(self) -> bool:
        """Wait until no mesh peer we still wait for has a half-full outbound queue.

        False when some peer's queue stayed that full for ``outbound_wait_max``:
        py-libp2p may drop the next batch for it, and it joins the slow peers
        that are not waited for until their queue drains.
        """
        deadline = trio.current_time() + self.outbound_wait_max
        while True:
            backlogged = self._backlogged_peers()
            self._slow_peers &= backlogged  # a drained queue is waited for again
            waiting = backlogged - self._slow_peers
            if not waiting:
                return True
            if trio.current_time() >= deadline:
                self._slow_peers |= waiting
                log.info("gossip peers too slow to wait for", peers=[str(peer) for peer in waiting])
                return False
            await trio.sleep(OUTBOUND_POLL_INTERVAL)

    def _backlogged_peers(self) -> set[ID]:
        queues = self.pubsub.peer_queues
        return {
            peer
            for peer in self.router.mesh.get(self.topic, ())
            if peer in queues and len(queues[peer]) > OUTBOUND_QUEUE_PAUSE
        }

    async def _publish_batch(self, congested: bool) -> None:
        txs: list[Transaction] = []
        size = BATCH_OVERHEAD_MAX
        while (
            self._pending
            and len(txs) < self.batch_txs_max
            and size + len(self._pending[0].encoded) <= self.batch_bytes_max
        ):
            tx = self._pending.popleft()
            txs.append(tx)
            size += len(tx.encoded)
        self._pending_bytes -= size - BATCH_OVERHEAD_MAX
        assert txs, "publish() admits only transactions that fit in a batch alone"
        data = codec.encode(TxBatch(tuple(txs)))
        assert len(data) <= size <= self.batch_bytes_max, (len(data), size)
        await self.pubsub.publish(self.topic, data)
        self.counters.batches_published += 1
        self.counters.txs_published += len(txs)
        self.counters.batches_published_congested += int(congested)

    # -- receiving ---------------------------------------------------------------

    def _tx_is_acceptable(self, tx: Transaction) -> bool:
        return tx.chain_id == self.chain_id and self.accept(tx)

    def _validate(self, forwarder: ID, message: rpc_pb2.Message) -> bool:
        """GossipSub topic validator: accept the batch, or reject it and count why.

        py-libp2p runs it once per message id (later copies are dropped as
        seen, a rejection is cached), before forwarding: a rejected batch
        travels no further.
        """
        data = message.data
        publisher = ID(message.from_id)
        if self.admitted is not None and not self.admitted(publisher):
            return self._reject("not_admitted", forwarder, message, "the publisher may not publish transactions here")
        if len(data) > self.batch_bytes_max:
            return self._reject("too_big", forwarder, message, f"{len(data)} bytes, limit {self.batch_bytes_max}")
        budgeted = self.unbudgeted is None or not self.unbudgeted(publisher)
        if budgeted and self._budgets.take(publisher, trio.current_time(), max(len(data), 1)):
            return self._reject("over_budget", forwarder, message, f"over {self.publisher_bytes_per_s:.0f} bytes/s")
        try:
            batch = codec.decode(TxBatch, data, self.batch_bytes_max)
        except codec.CodecError as error:
            return self._reject("malformed", forwarder, message, str(error))
        for index, tx in enumerate(batch.txs):
            if not self._tx_is_acceptable(tx):
                detail = f"transaction {index} ({tx.id.hex()[:16]}) refused"
                return self._reject("bad_tx", forwarder, message, detail)
        if message.from_id != self._own_id:  # our own are not delivered to us
            self._accepted[_batch_key(message)] = batch
            while len(self._accepted) > ACCEPTED_BATCHES_MAX:  # not delivered after all (channel full)
                del self._accepted[next(iter(self._accepted))]
        return True

    async def _read_peer(self, stream: INetStream) -> None:
        """Pubsub's stream handler, except that any error reading a peer ends that peer's
        stream, never the node: py-libp2p catches only some, and one RPC that does not parse
        as protobuf raised ``DecodeError`` through the host's nursery and stopped the node."""
        try:
            await self.pubsub.stream_handler(stream)
        except Exception as error:
            self.counters.streams_failed += 1
            peer = stream.muxed_conn.peer_id
            log.info("pubsub stream failed", peer=str(peer), error=repr(error)[:200])
            try:
                await stream.reset()
            except Exception:  # already gone
                pass
            self.pubsub._handle_dead_peer(peer)  # what Pubsub does for the errors it does catch

    def _reject(self, reason: str, forwarder: ID, message: rpc_pb2.Message, detail: str) -> bool:
        self.counters.batches_rejected[reason] += 1
        origin = str(ID(message.from_id))  # strict signing already checked it is a peer id
        log.warning("tx batch rejected", reason=reason, detail=detail[:200], forwarder=str(forwarder), origin=origin)
        exempt = self.unbudgeted is not None and self.unbudgeted(forwarder)
        if forwarder != self.host.get_id() and not exempt and self._rejections.take(forwarder, trio.current_time()):
            self._rejections.forget(forwarder)  # a full allowance if it comes back
            try:
                self._disconnect_send.send_nowait(forwarder)
            except trio.WouldBlock:  # disconnections already queued; this peer's next rejection retries
                pass
        return False

    async def _disconnect_loop(self) -> None:
        async for peer in self._disconnect_receive:
            log.warning("gossip peer disconnected: too many rejected batches", peer=str(peer))
            try:
                await self.host.disconnect(peer)
            except Exception as error:  # already gone
                log.info("disconnect failed", peer=str(peer), error=repr(error)[:200])
                continue
            self.counters.peers_disconnected += 1

    async def _receive_loop(self, subscription: ISubscriptionAPI) -> None:
        while True:
            message = await subscription.get()
            if message.from_id == self._own_id:
                continue
            batch = self._accepted.pop(_batch_key(message), None)
            if batch is None:  # validated earlier, but evicted (or passed on py-libp2p's cached verdict)
                batch = codec.decode(TxBatch, message.data, self.batch_bytes_max)
            self.counters.batches_received += 1
            self.counters.txs_received += len(batch.txs)
            try:
                self._inbox_send.send_nowait(batch.txs)
            except trio.WouldBlock:
                self.counters.batches_dropped += 1
                log.warning("tx batch dropped: incoming channel full", txs=len(batch.txs))

    # -- life cycle --------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the pubsub service, subscribe, publish and receive batches until cancelled."""
        if self._started:
            raise RuntimeError("a TxGossip runs once")
        self._started = True
        try:
            async with background_trio_service(self.pubsub), background_trio_service(self.router):
                await self.pubsub.wait_until_ready()
                subscription = await self.pubsub.subscribe(self.topic)
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._flush_loop)
                        nursery.start_soon(self._receive_loop, subscription)
                        nursery.start_soon(self._disconnect_loop)
                        task_status.started()
                finally:
                    # While the pubsub service stops, py-libp2p can still hand it a message
                    # read from a live connection, and that crashes the host (see module
                    # docstring). Unsubscribed, it skips our topic's messages before that.
                    with trio.CancelScope(shield=True), trio.move_on_after(UNSUBSCRIBE_TIMEOUT):
                        await self.pubsub.unsubscribe(self.topic)
        finally:
            self._stopped = True
            self._inbox_send.close()


def _nobody(_peer: ID) -> bool:
    return False


class _SmallMeshGossipSub(GossipSub):
    """GossipSub with flood publishing (GossipSub 1.1's, which py-libp2p lacks) and a
    shortcut for the peers of a small full mesh (``full_mesh``: the validators, each
    connected to every other).

    A node publishes its own batches to every peer it knows is subscribed, mesh or
    not (go-libp2p does too), so a batch no longer waits for a mesh to form after a
    start or a reconnect. A batch that came straight from its publisher, a full-mesh
    peer, therefore already reached every other full-mesh peer: while there are no
    more of them than fit in one mesh (D), it is relayed only to the subscribers
    outside the full mesh (observers, clients, other implementations: every one this
    node knows, mesh or not, since they may hear of the topic from this node alone),
    and no IDONTWANT is sent for it. Relaying it among validators only made each
    receive, decrypt and drop every batch n - 2 more times, and the IDONTWANTs
    (optional in GossipSub 1.2) cost a control message per peer per batch and came
    too late to stop a relay: on 4 nodes at 100 tx/s, dropping both halved the
    commit latency.
    A batch from a publisher outside the full mesh goes to every full-mesh peer this
    node knows is subscribed, besides the usual mesh relay, so what an observer or a
    client publishes through one validator reaches all of them.
    What this gives up: a validator whose link to the publishing validator alone is
    down no longer gets that batch through a third node. It still learns the
    transactions from the blocks; if it is the primary, the backups that hold them
    time out and elect one that has them. Messages that already came through a relay
    are relayed as usual, and bigger networks relay everything.
    """

    def __init__(self, full_mesh: Callable[[ID], bool], **options: Any) -> None:
        super().__init__(**options)
        self.full_mesh = full_mesh

    def _subscribed(self, topics: list[str]) -> set[ID]:
        assert self.pubsub is not None
        return {peer for topic in topics for peer in self.pubsub.peer_topics.get(topic, ())}

    def _small_full_mesh(self, topics: list[str]) -> bool:
        return len({peer for peer in self._subscribed(topics) if self.full_mesh(peer)}) <= self.degree

    def _get_peers_to_send(
        self, topic_ids: Iterable[str], msg_forwarder: ID, origin: ID, msg_id: bytes | None = None
    ) -> Iterable[ID]:
        topics = list(topic_ids)
        if self.pubsub is None:
            return super()._get_peers_to_send(topics, msg_forwarder, origin, msg_id)
        relayed = set(super()._get_peers_to_send(topics, msg_forwarder, origin, msg_id))
        subscribed = self._subscribed(topics)
        if msg_forwarder == origin == self.pubsub.my_id:
            return relayed | subscribed
        if not self.full_mesh(origin):
            return (relayed | {peer for peer in subscribed if self.full_mesh(peer)}) - {msg_forwarder, origin}
        if msg_forwarder == origin and self._small_full_mesh(topics):
            return {peer for peer in subscribed if not self.full_mesh(peer)} - {msg_forwarder, origin}
        return relayed

    async def _emit_idontwant_for_message(self, msg_id: bytes, topic_ids: Iterable[str]) -> None:
        topics = list(topic_ids)
        if not self._small_full_mesh(topics):
            await super()._emit_idontwant_for_message(msg_id, topics)


def _new_router(full_mesh: Callable[[ID], bool]) -> GossipSub:
    """GossipSub tuned for a permissioned network of 4 to 20 validators.

    - D = 6, D_low = 4, D_high = 8: up to 7 validators every peer is in every
      mesh (one hop); with 20 the mesh keeps 4-8 peers and two hops reach all,
      while a batch is still sent at most 8 times per node.
    - Heartbeat every second (py-libp2p's default is 120 s), so a mesh forms
      and heals within seconds.
    - IDONTWANT: up to 1000 ids per peer per heartbeat (go-libp2p's default),
      not 10, so duplicates of big batches are suppressed at our rates; none
      sent, and no relaying among the validators' full mesh (``_SmallMeshGossipSub``).
    - Spam protection off: its 10 messages/s per peer would drop our batches
      (our own included); the validators are known and every batch is verified.
    - Adaptive gossip off: it raises the heartbeat to 30-60 s when it judges
      the network unhealthy. Eclipse protection off: peers are admitted by
      identity, and testnets put them all on one IP.
    - No peer exchange: peers come from genesis, not from other peers.
    """
    return _SmallMeshGossipSub(
        full_mesh,
        protocols=[PROTOCOL_ID_V12, PROTOCOL_ID_V11],
        degree=6,
        degree_low=4,
        degree_high=8,
        heartbeat_interval=1,
        max_idontwant_messages=1000,
        do_px=False,
        spam_protection_enabled=False,
        adaptive_gossip_enabled=False,
        eclipse_protection_enabled=False,
    )
