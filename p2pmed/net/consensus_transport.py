"""Consensus messages between validators over direct libp2p streams.

Protocol ``/p2pmed/pbft/1``: a one-way stream of length-prefixed frames
(``p2pmed.net.framing``), each frame the bytes of one encoded consensus message.
A validator keeps one long-lived outgoing stream to each other validator and
only writes on it; the receiving side only reads. So between two validators
there are two streams, one per direction.

Who sent a frame is the authenticated peer id of the connection (Noise binds it
to the validator key; see ``p2pmed.net.identity``; a node offers no security
protocol but Noise, ``p2pmed.net.host``). Peers are named by peer id, never by a
position: the validator set changes by vote (``set_validators``), and with it every
position. Streams from a peer outside the current set are reset at once and counted. A frame that
breaks the framing rules (oversized, non-minimal or overlong length prefix,
truncated) resets that stream and closes the connection to that peer, both
counted; the peer may dial again, and nothing else is affected. Each validator
may send at most ``inbound_bytes_per_s`` (a burst of two maximum frames): a peer
over it is not read until its budget refills, counted as ``inbound_throttled``,
so a Byzantine validator cannot make this node decode more than that. This
layer does not decode messages: the consumer of ``incoming`` gets ``(sender_peer_id, bytes)`` and must treat the
bytes as untrusted (``decode_message`` and signature checks).

Sending never blocks the caller. Each peer has a bounded queue (frames and
bytes); when it is full the oldest frames are dropped and counted, since PBFT
retransmits what matters and a newer message usually supersedes an older one.
A sender task per peer opens the stream lazily, writes queued frames in batches
and, on failure, resets the stream and opens a new one (immediately the first
time, then with capped exponential backoff), retrying the batch that failed.
Frames written just before a peer dies can still be lost without any error
here: delivery is best effort, as consensus assumes.

Inbound frames go into one bounded trio channel shared by all peers. When the
consumer falls behind, the stream handlers wait on it (trio wakes blocked
senders first-come first-served, so one busy peer cannot starve the others) and
yamux flow control pushes back on the senders.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from typing import Any

import structlog
import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from p2pmed.codec import MESSAGE_SIZE_MAX
from p2pmed.net.framing import FrameError, FrameReader, encode_frame
from p2pmed.token_bucket import PeerBudgets

__all__ = ["PROTOCOL_ID", "ConsensusTransport", "TransportCounters"]

PROTOCOL_ID = TProtocol("/p2pmed/pbft/1")

log = structlog.get_logger(__name__)


@dataclasses.dataclass
class TransportCounters:
    """Monotonic counters for metrics and tests."""

    frames_sent: int = 0
    frames_received: int = 0
    frames_dropped: int = 0  # outgoing, dropped oldest-first from a full queue
    frames_unrouted: int = 0  # outgoing, for a peer no longer a validator (the set changed)
    frames_oversized: int = 0  # outgoing, over the frame limit: a bug (messages are bounded by construction)
    streams_opened: int = 0  # outgoing streams negotiated
    open_failures: int = 0  # outgoing stream could not be opened (dial, negotiation, timeout)
    write_failures: int = 0  # outgoing stream failed while writing; it is reset and reopened
    streams_accepted: int = 0  # inbound streams from validators
    streams_refused: int = 0  # inbound streams from peers that are not validators: reset
    streams_malformed: int = 0  # inbound streams reset because a frame broke the framing rules
    peers_disconnected: int = 0  # connections closed because their peer broke the framing rules
    inbound_throttled: int = 0  # inbound frames held back because their peer was over its byte rate


@dataclasses.dataclass(eq=False)
class _Peer:
    peer_id: ID
    queue: collections.deque[bytes] = dataclasses.field(default_factory=collections.deque)
    queued_bytes: int = 0
    wakeup: trio.Event = dataclasses.field(default_factory=trio.Event)
    stream: INetStream | None = None
    scope: trio.CancelScope = dataclasses.field(default_factory=trio.CancelScope)
    """The sender task's: cancelled when the peer leaves the validator set."""


class ConsensusTransport:
    """Direct, framed, best-effort delivery of consensus messages between validators.

    ``validators`` are the validators' peer ids (this host's own among them or not); the
    host's peerstore must hold their addresses (or connections to them must exist) for
    sending to work. Call ``run`` (e.g. ``await nursery.start(transport.run)``) inside the
    nursery that runs under ``host.run``; cancel it to stop.
    """

    def __init__(
        self,
        host: IHost,
        validators: Sequence[ID],
        *,
        frame_size_max: int = MESSAGE_SIZE_MAX,
        queue_frames_max: int = 1024,
        queue_bytes_max: int = 64 << 20,
        inbox_size: int = 1024,
        batch_bytes_max: int = 256 << 10,
        inbound_bytes_per_s: float = 32 << 20,
        open_timeout: float = 10.0,
        retry_delay_min: float = 0.05,
        retry_delay_max: float = 5.0,
    ) -> None:
        if queue_bytes_max < frame_size_max + 8 or queue_frames_max < 1:
            raise ValueError("a per-peer queue must be able to hold at least one frame of the maximum size")
        self.host = host
        self.frame_size_max = frame_size_max
        self.queue_frames_max = queue_frames_max
        self.queue_bytes_max = queue_bytes_max
        self.batch_bytes_max = batch_bytes_max
        self.open_timeout = open_timeout
        self.retry_delay_min = retry_delay_min
        self.retry_delay_max = retry_delay_max
        self.counters = TransportCounters()
        self._peers: dict[ID, _Peer] = {}
        self._inbox_send, self.incoming = trio.open_memory_channel[tuple[ID, bytes]](inbox_size)
        self._inbound: dict[INetStream, ID] = {}
        self._budgets: PeerBudgets[ID] = PeerBudgets(inbound_bytes_per_s, 2 * frame_size_max)  # by sender
        self._nursery: trio.Nursery | None = None
        self._started = False
        self._stopped = False
        self.set_validators(validators)

    def set_validators(self, validators: Sequence[ID]) -> None:
        """The validator set changed: peers that left stop being written to and read from
        (their queues, streams and sender tasks go); peers that joined get their own."""
        if len(set(validators)) != len(validators):
            raise ValueError("the same peer id appears twice among the validators")
        others = [peer_id for peer_id in validators if peer_id != self.host.get_id()]
        for peer_id in [peer_id for peer_id in self._peers if peer_id not in others]:
            self._peers.pop(peer_id).scope.cancel()
        for stream, peer_id in list(self._inbound.items()):
            if peer_id not in others:
                del self._inbound[stream]  # its handler stops at its next frame
                if self._nursery is not None:
                    self._nursery.start_soon(_reset, stream)
        for peer_id in others:
            if peer_id not in self._peers:
                peer = self._peers[peer_id] = _Peer(peer_id)
                if self._nursery is not None:
                    self._nursery.start_soon(self._sender, peer)

    # -- sending --------------------------------------------------------------

    def send(self, peer_id: ID, data: bytes) -> None:
        """Queue ``data`` as one frame for validator ``peer_id``; never blocks, never raises.
        A frame for a peer outside the current set (the set just changed) is dropped and counted.

        A message over ``frame_size_max`` is a bug, since every message is bounded by
        construction: it is dropped, counted and logged, and the node carries on.
        """
        peer = self._peers.get(peer_id)
        if peer is None:
            self.counters.frames_unrouted += 1
            return
        try:
            frame = encode_frame(data, self.frame_size_max)
        except FrameError as error:
            self.counters.frames_oversized += 1
            log.error(
                "oversized consensus message dropped (a bug)", peer=str(peer_id), size=len(data), error=str(error)
            )
            return
        if self._stopped:
            self.counters.frames_dropped += 1
            return
        peer.queue.append(frame)
        peer.queued_bytes += len(frame)
        while len(peer.queue) > self.queue_frames_max or peer.queued_bytes > self.queue_bytes_max:
            peer.queued_bytes -= len(peer.queue.popleft())
            self.counters.frames_dropped += 1
        peer.wakeup.set()

    def queued(self, peer_id: ID) -> int:
        """How many frames wait in validator ``peer_id``'s outgoing queue."""
        return len(self._peers[peer_id].queue)

    async def _sender(self, peer: _Peer) -> None:
        with peer.scope:
            try:
                await self._send_queued(peer)
            finally:
                if peer.stream is not None and peer.scope.cancel_called:  # the peer left the set
                    with trio.CancelScope(shield=True), trio.move_on_after(1):
                        await _reset(peer.stream)
                    peer.stream = None

    async def _send_queued(self, peer: _Peer) -> None:
        failures = 0  # consecutive open or write failures
        while True:
            if not peer.queue:
                await peer.wakeup.wait()
                peer.wakeup = trio.Event()
                continue
            if failures > 1:
                await trio.sleep(min(self.retry_delay_min * 2 ** (failures - 2), self.retry_delay_max))
            if peer.stream is None:
                peer.stream = await self._open(peer)
                if peer.stream is None:
                    failures += 1
                    continue
            batch = [peer.queue.popleft()]
            size = len(batch[0])
            while peer.queue and size + len(peer.queue[0]) <= self.batch_bytes_max:
                frame = peer.queue.popleft()
                batch.append(frame)
                size += len(frame)
            peer.queued_bytes -= size
            try:
                await peer.stream.write(b"".join(batch) if len(batch) > 1 else batch[0])
            except Exception as error:  # libp2p raises many kinds here; none may stop the sender
                self.counters.write_failures += 1
                failures += 1
                log.info("pbft stream write failed", peer=str(peer.peer_id), error=repr(error))
                await _reset(peer.stream)
                peer.stream = None
                self._requeue(peer, batch)
                continue
            failures = 0
            self.counters.frames_sent += len(batch)

    async def _open(self, peer: _Peer) -> INetStream | None:
        error: object = "timed out"
        with trio.move_on_after(self.open_timeout):
            try:
                stream = await self.host.new_stream(peer.peer_id, [PROTOCOL_ID])
            except Exception as caught:  # dial, security, muxer or negotiation failure
                error = caught
            else:
                self.counters.streams_opened += 1
                return stream
        self.counters.open_failures += 1
        log.info("pbft stream open failed", peer=str(peer.peer_id), error=repr(error))
        return None

    def _requeue(self, peer: _Peer, batch: list[bytes]) -> None:
        """Put a failed batch back at the head of the queue, as far as it still fits."""
        for frame in reversed(batch):
            if len(peer.queue) < self.queue_frames_max and peer.queued_bytes + len(frame) <= self.queue_bytes_max:
                peer.queue.appendleft(frame)
                peer.queued_bytes += len(frame)
            else:  # newer frames filled the queue meanwhile; these are the oldest
                self.counters.frames_dropped += 1

    # -- receiving --------------------------------------------------------------

    async def _handle_stream(self, stream: INetStream) -> None:
        """libp2p stream handler for ``PROTOCOL_ID``; runs in the host's own task."""
        peer_id = stream.muxed_conn.peer_id
        if peer_id not in self._peers or self._stopped:
            self.counters.streams_refused += 1
            reason = (
                "stopped" if self._stopped else "own peer id" if peer_id == self.host.get_id() else "not a validator"
            )
            log.info("pbft stream refused", peer=str(peer_id), reason=reason)
            await _reset(stream)
            return
        self.counters.streams_accepted += 1
        self._inbound[stream] = peer_id
        reader = FrameReader(stream, self.frame_size_max)
        try:
            while True:
                frame = await reader.read_frame()
                if frame is None:  # the sender closed its side cleanly
                    with trio.move_on_after(1):
                        await stream.close()
                    return
                self.counters.frames_received += 1
                await self._spend(peer_id, len(frame) or 1)
                if stream not in self._inbound:  # the peer left the set while we waited
                    return
                await self._inbox_send.send((peer_id, frame))
        except FrameError as error:
            self.counters.streams_malformed += 1
            log.warning("pbft peer disconnected: bad frame", peer=str(peer_id), error=str(error))
            await _reset(stream)
            await self._disconnect(peer_id)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the transport stopped
        except Exception as error:  # reset by the peer, connection lost...
            log.info("pbft inbound stream ended", peer=str(peer_id), error=repr(error))
        finally:
            self._inbound.pop(stream, None)
        await _reset(stream)

    async def _spend(self, sender: ID, size: int) -> None:
        """Hold back a peer over its byte rate (every frame it sends costs us a strict decode
        and perhaps signature checks); stopping to read its stream slows the sender down."""
        wait = self._budgets.take(sender, trio.current_time(), size)
        if wait:
            self.counters.inbound_throttled += 1
            while wait:
                await trio.sleep(wait)
                wait = self._budgets.take(sender, trio.current_time(), size)

    async def _disconnect(self, peer_id: ID) -> None:
        """Drop every connection to a peer that broke the protocol; it may dial again,
        and an honest validator with a bug gets a fresh start rather than a ban."""
        try:
            await self.host.disconnect(peer_id)
        except Exception as error:  # already gone
            log.info("disconnect failed", peer=str(peer_id), error=repr(error))
            return
        self.counters.peers_disconnected += 1

    # -- life cycle ---------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve ``PROTOCOL_ID`` and send queued frames until cancelled."""
        if self._started:
            raise RuntimeError("a ConsensusTransport runs once")
        self._started = True
        self.host.set_stream_handler(PROTOCOL_ID, self._handle_stream)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for peer in self._peers.values():
                    nursery.start_soon(self._sender, peer)
                task_status.started()
                await trio.sleep_forever()  # with no peer yet, senders start as they join
        finally:
            self._stopped = True
            self.host.remove_stream_handler(PROTOCOL_ID)
            self._inbox_send.close()
            with trio.CancelScope(shield=True), trio.move_on_after(2):
                for peer in self._peers.values():
                    if peer.stream is not None:
                        await _close(peer.stream)
                        peer.stream = None
                for stream in list(self._inbound):
                    await _reset(stream)


async def _reset(stream: INetStream) -> None:
    try:
        await stream.reset()
    except Exception:  # already dead: nothing left to release
        pass


async def _close(stream: INetStream) -> None:
    try:
        await stream.close()
    except Exception:
        await _reset(stream)
