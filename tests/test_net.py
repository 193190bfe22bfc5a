"""The daemon's networking brick: libp2p identities, frames, the consensus transport.

Framing is tested against an in-memory stream. The transport is tested with
real py-libp2p hosts (TCP + Noise + Yamux) on 127.0.0.1 with ephemeral ports;
every such test is bounded by ``trio.fail_after`` and shuts its hosts down.
Nothing waits on a sleep: each step awaits the event that proves it happened
(a frame arriving, a stream read failing because the other side reset it).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.host.exceptions import StreamFailure
from libp2p.network.stream.exceptions import StreamError
from libp2p.peer.id import ID

from p2pmed.codec import MESSAGE_SIZE_MAX
from p2pmed.crypto import SigningKey
from p2pmed.net import PROTOCOL_ID, ConsensusTransport, FrameError, FrameReader, encode_frame, key_pair_of, peer_id_of
from p2pmed.net.framing import decode_varint, encode_varint

TEST_TIMEOUT = 20
LISTEN = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


# -- identity -------------------------------------------------------------------


def test_peer_id_of_key_pair_matches_peer_id_of_public_key():
    for seed in (bytes(32), bytes(range(32)), b"\xff" * 32):
        key = SigningKey.from_seed(seed)
        key_pair = key_pair_of(key)
        assert key_pair.public_key.to_bytes() == key.public_key
        assert ID.from_pubkey(key_pair.public_key) == peer_id_of(key.public_key)


def test_peer_id_is_the_standard_libp2p_encoding_of_the_validator_key():
    # identity multihash (0x00, length 0x24) of the protobuf PublicKey {Type: Ed25519 (1), Data: 32 bytes}
    key = SigningKey.from_seed(bytes(range(32)))
    assert peer_id_of(key.public_key).to_bytes() == b"\x00\x24\x08\x01\x12\x20" + key.public_key
    assert str(peer_id_of(key.public_key)).startswith("12D3KooW")


def test_distinct_keys_give_distinct_peer_ids_and_bad_keys_are_refused():
    ids = {peer_id_of(SigningKey.from_seed(bytes([i]) * 32).public_key) for i in range(20)}
    assert len(ids) == 20
    for bad in (b"", bytes(31), bytes(33)):
        with pytest.raises(ValueError):
            peer_id_of(bad)


# -- framing ----------------------------------------------------------------------


class FakeStream:
    """``read(n)`` over fixed bytes, in chunks of sizes drawn from ``chunk_sizes``.

    At the end it returns ``b""`` or raises ``EOFError`` (libp2p's ``StreamEOF``
    is one), or, with ``end="forbidden"``, fails the test if read again.
    """

    def __init__(self, data: bytes, chunk_sizes: Sequence[int] = (1 << 30,), end: str = "empty") -> None:
        self.data = data
        self.position = 0
        self.chunk_sizes = list(chunk_sizes)
        self.reads = 0
        self.end = end

    async def read(self, n: int) -> bytes:
        await trio.lowlevel.checkpoint()
        assert n > 0
        if self.position == len(self.data):
            if self.end == "forbidden":
                raise AssertionError("read past the data the test allowed")
            if self.end == "eof-error":
                raise EOFError
            return b""
        size = min(n, self.chunk_sizes[self.reads % len(self.chunk_sizes)], len(self.data) - self.position)
        self.reads += 1
        chunk = self.data[self.position : self.position + size]
        self.position += size
        return chunk


async def read_all(reader: FrameReader) -> list[bytes]:
    frames = []
    while (frame := await reader.read_frame()) is not None:
        frames.append(frame)
    return frames


def test_varint_encoding_is_minimal_and_round_trips():
    cases = {0: b"\x00", 1: b"\x01", 127: b"\x7f", 128: b"\x80\x01", 300: b"\xac\x02", 16383: b"\xff\x7f"}
    for value, encoded in cases.items():
        assert encode_varint(value) == encoded
        assert decode_varint(encoded) == (value, len(encoded))
    for value in (16384, 1 << 21, MESSAGE_SIZE_MAX - 1, MESSAGE_SIZE_MAX):
        encoded = encode_varint(value)
        assert decode_varint(b"junk" + encoded + b"tail", start=4) == (value, len(encoded))
        assert decode_varint(encoded[:-1]) is None  # incomplete: more bytes needed
    assert len(encode_varint(MESSAGE_SIZE_MAX)) == 4


@pytest.mark.parametrize(
    ("prefix", "complaint"),
    [
        (b"\x80\x00", "non-minimal"),
        (b"\x81\x80\x00", "non-minimal"),
        (encode_varint(MESSAGE_SIZE_MAX + 1), "too big"),
        (b"\xff\xff\xff\x7f", "too big"),
        (b"\x80\x80\x80\x80", "longer than 4 bytes"),  # zeros forever would never exceed the limit
    ],
)
def test_bad_length_prefixes_are_refused(prefix, complaint):
    with pytest.raises(FrameError, match=complaint):
        decode_varint(prefix)


def test_encode_frame_refuses_oversized_bodies():
    assert encode_frame(b"") == b"\x00"
    assert encode_frame(b"abc") == b"\x03abc"
    assert encode_frame(b"x" * 10, size_max=10) == b"\x0a" + b"x" * 10
    with pytest.raises(FrameError, match="too big"):
        encode_frame(b"x" * 11, size_max=10)


async def test_many_frames_arrive_whole_whatever_the_read_chunking():
    rng = random.Random(7)
    small = [b"", b"a", bytes(127), bytes(128), b"\x00" * 300, b""] + [
        rng.randbytes(rng.randrange(200)) for _ in range(40)
    ]
    big = small + [rng.randbytes(rng.choice((1, 1000, 70_000))) for _ in range(30)] + [rng.randbytes(300_000)]
    cases = [(small, [1]), (small, [2, 3, 5]), (big, [1 << 30]), (big, [rng.randrange(1, 20_000) for _ in range(50)])]
    for frames, chunk_sizes in cases:
        data = b"".join(encode_frame(frame) for frame in frames)
        for end in ("empty", "eof-error"):
            assert await read_all(FrameReader(FakeStream(data, chunk_sizes, end))) == frames


async def test_zero_length_frames_are_frames():
    reader = FrameReader(FakeStream(b"\x00\x00\x01z\x00"))
    assert await read_all(reader) == [b"", b"", b"z", b""]
    assert await reader.read_frame() is None  # and stays at the end


async def test_empty_input_is_a_clean_end():
    assert await FrameReader(FakeStream(b"")).read_frame() is None
    assert await FrameReader(FakeStream(b"", end="eof-error")).read_frame() is None


@pytest.mark.parametrize("end", ["empty", "eof-error"])
@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"\x05ab", "3 bytes short of a 5-byte body"),
        (encode_frame(b"ok") + b"\x80", "inside the length prefix"),
        (encode_frame(b"ok") + encode_varint(70_000) + bytes(69_999), "1 bytes short of a 70000-byte body"),
    ],
)
async def test_truncated_frames_are_errors(data, complaint, end):
    reader = FrameReader(FakeStream(data, [3, 5000], end))
    if data.startswith(encode_frame(b"ok")):
        assert await reader.read_frame() == b"ok"  # whole frames before the cut are delivered
    with pytest.raises(FrameError, match=complaint):
        await reader.read_frame()


async def test_oversized_length_is_refused_before_any_body_is_read():
    stream = FakeStream(encode_varint(MESSAGE_SIZE_MAX + 1), end="forbidden")
    with pytest.raises(FrameError, match="too big"):
        await FrameReader(stream).read_frame()
    assert stream.reads == 1
    # the limit is the reader's own: a smaller one applies to smaller frames
    stream = FakeStream(encode_frame(b"x" * 11) + bytes(100), end="forbidden")
    with pytest.raises(FrameError, match="too big"):
        await FrameReader(stream, size_max=10).read_frame()


async def test_a_frame_of_exactly_the_maximum_size_is_accepted():
    body = b"\x5a" * MESSAGE_SIZE_MAX
    assert await read_all(FrameReader(FakeStream(encode_frame(body), [1 << 20]))) == [body]


# -- transport: queues, without a network ----------------------------------------


def validator_keys(count: int, base: int = 1) -> list[SigningKey]:
    return [SigningKey.from_seed(bytes([base + i]) * 32) for i in range(count)]


def test_transport_refuses_a_bad_setup_and_bad_sends():
    keys = validator_keys(3)
    ids = [peer_id_of(key.public_key) for key in keys]
    host = new_host(key_pair=key_pair_of(keys[0]))
    with pytest.raises(ValueError, match="twice"):
        ConsensusTransport(host, [ids[0], ids[1], ids[1]])
    transport = ConsensusTransport(host, ids, frame_size_max=100, queue_bytes_max=1000)
    transport.send(ids[0], b"to myself")
    transport.send(peer_id_of(validator_keys(1, base=9)[0].public_key), b"to nobody")
    assert transport.counters.frames_unrouted == 2
    transport.send(ids[1], b"x" * 101)  # over the limit: a bug upstream, dropped and counted, never raised
    assert transport.queued(ids[1]) == 0 and transport.counters.frames_oversized == 1
    transport.send(ids[1], b"x" * 90)
    assert transport.queued(ids[1]) == 1
    transport.set_validators(ids[:1])  # validator 1 left the set: its queue goes with it
    transport.send(ids[1], b"x")
    assert transport.counters.frames_unrouted == 3


def test_full_queue_drops_oldest_first_counting_frames_and_bytes():
    keys = validator_keys(2)
    ids = [peer_id_of(key.public_key) for key in keys]
    host = new_host(key_pair=key_pair_of(keys[0]))
    transport = ConsensusTransport(host, ids, frame_size_max=100, queue_frames_max=3, queue_bytes_max=300)
    for i in range(5):
        transport.send(ids[1], b"%d" % i)
    assert transport.queued(ids[1]) == 3
    assert transport.counters.frames_dropped == 2
    for _ in range(3):  # 3 x 101-byte frames exceed 300 bytes: each new one pushes one out
        transport.send(ids[1], b"x" * 100)
    assert transport.queued(ids[1]) == 2
    assert transport.counters.frames_dropped == 6


# -- transport: real hosts ------------------------------------------------------------


@dataclass
class Network:
    hosts: list[IHost]  # validators first, then outsiders
    ids: list[ID]  # the validators' peer ids, by index
    transports: list[ConsensusTransport]
    nursery: trio.Nursery
    scopes: dict[int, trio.CancelScope] = field(default_factory=dict)
    stopped: dict[int, trio.Event] = field(default_factory=dict)

    async def start(self) -> None:
        for index in range(len(self.transports)):
            await self.nursery.start(self._run, index)

    async def stop(self, index: int) -> None:
        self.scopes[index].cancel()
        await self.stopped[index].wait()

    async def _run(self, index: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.stopped[index] = trio.Event()
        try:
            with trio.CancelScope() as self.scopes[index]:
                await self.transports[index].run(task_status=task_status)
        finally:
            self.stopped[index].set()


@asynccontextmanager
async def network(validators: int, outsiders: int = 0, start: bool = True, **options: Any) -> AsyncIterator[Network]:
    keys = validator_keys(validators + outsiders)
    hosts = [new_host(key_pair=key_pair_of(key)) for key in keys]
    ids = [peer_id_of(key.public_key) for key in keys[:validators]]
    async with trio.open_nursery() as outer:  # DESIGN.md: open the nursery before host.run()
        async with AsyncExitStack() as stack:
            for host in hosts:
                await stack.enter_async_context(host.run(listen_addrs=[LISTEN]))
            for host in hosts:  # every host can dial every validator; ttl 0 = permanent
                for peer_id, other in zip(ids, hosts, strict=False):
                    if other is not host:
                        host.get_peerstore().add_addrs(peer_id, other.get_transport_addrs(), 0)
            async with trio.open_nursery() as nursery:
                net = Network(
                    hosts,
                    ids,
                    [ConsensusTransport(h, ids, **options) for h in hosts[:validators]],
                    nursery,
                )
                if start:
                    await net.start()
                try:
                    yield net
                finally:
                    nursery.cancel_scope.cancel()
        outer.cancel_scope.cancel()


async def test_frames_flow_both_ways_between_three_validators_with_the_right_sender():
    with trio.fail_after(TEST_TIMEOUT):
        async with network(3) as net:
            for sender, transport in enumerate(net.transports):
                for receiver in range(3):
                    if receiver != sender:
                        transport.send(net.ids[receiver], b"%d->%d" % (sender, receiver))
            for receiver, transport in enumerate(net.transports):
                got = {await transport.incoming.receive() for _ in range(2)}
                assert got == {
                    (net.ids[sender], b"%d->%d" % (sender, receiver)) for sender in range(3) if sender != receiver
                }
            # many frames on the reused stream arrive in order
            frames = [b"%05d" % i + bytes(i % 700) for i in range(500)]
            for frame in frames:
                net.transports[2].send(net.ids[0], frame)
            assert [await net.transports[0].incoming.receive() for _ in frames] == [
                (net.ids[2], frame) for frame in frames
            ]
            for transport in net.transports:
                counters = transport.counters
                assert counters.streams_opened == 2 and counters.streams_accepted == 2
                assert counters.open_failures == counters.write_failures == counters.frames_dropped == 0
                assert counters.streams_refused == counters.streams_malformed == 0
            assert net.transports[2].counters.frames_sent == 502
            assert net.transports[0].counters.frames_received == 502


async def test_a_non_validator_stream_is_reset_and_counted():
    with trio.fail_after(TEST_TIMEOUT):
        async with network(2, outsiders=1) as net:
            outsider = net.hosts[2]
            # The validator resets the stream right after protocol negotiation. py-libp2p's
            # dialer then sees either new_stream fail (the reset overtook the negotiation
            # reply) or its first read fail: both happen, depending on scheduling.
            with pytest.raises((StreamFailure, StreamError)):
                stream = await outsider.new_stream(net.ids[0], [PROTOCOL_ID])
                await stream.write(encode_frame(b"let me in"))
                await stream.read(1)
            assert net.transports[0].counters.streams_refused == 1
            assert net.transports[0].counters.frames_received == 0
            net.transports[1].send(net.ids[0], b"validators still talk")
            assert await net.transports[0].incoming.receive() == (net.ids[1], b"validators still talk")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(encode_varint(MESSAGE_SIZE_MAX + 1) + b"a bit of the body", id="oversized"),
        pytest.param(b"\x80\x80\x80\x80\x80", id="overlong-prefix"),
        pytest.param(b"\x80\x00", id="non-minimal-prefix"),
        pytest.param(encode_varint(1000) + bytes(10), id="truncated"),
    ],
)
async def test_a_malformed_frame_resets_that_stream_drops_the_peer_and_the_receiver_keeps_working(bad):
    with trio.fail_after(TEST_TIMEOUT):
        async with network(2) as net:
            receiver = net.transports[0]
            # validator 1 speaks the protocol by hand: a good frame, then a bad one
            stream = await net.hosts[1].new_stream(net.ids[0], [PROTOCOL_ID])
            await stream.write(encode_frame(b"good") + bad)
            await stream.close_write()  # the end of input that makes "truncated" truncated
            assert await receiver.incoming.receive() == (net.ids[1], b"good")
            with pytest.raises(StreamError):  # the receiver reset the stream
                await stream.read(1)
            while receiver.counters.peers_disconnected == 0:  # bounded by fail_after
                await trio.sleep(0.01)
            assert receiver.counters.streams_malformed == receiver.counters.peers_disconnected == 1
            assert net.ids[1] not in net.hosts[0].get_connected_peers()
            net.transports[1].send(
                net.ids[0], b"after"
            )  # it dials again  # validator 1's transport opens its own stream
            assert await receiver.incoming.receive() == (net.ids[1], b"after")
            assert receiver.counters.frames_received == 2
            assert receiver.counters.streams_accepted == 2


async def test_frames_queued_before_the_peer_is_reachable_are_sent_later_newest_kept():
    with trio.fail_after(TEST_TIMEOUT):
        async with network(2, start=False, queue_frames_max=3) as net:
            sender, receiver = net.transports
            for i in range(5):
                sender.send(net.ids[1], b"early %d" % i)
            await net.start()
            assert [await receiver.incoming.receive() for _ in range(3)] == [
                (net.ids[0], b"early %d" % i) for i in (2, 3, 4)
            ]
            assert sender.counters.frames_dropped == 2


async def test_the_outgoing_stream_is_reopened_after_the_connection_drops():
    with trio.fail_after(TEST_TIMEOUT):
        async with network(2) as net:
            sender, receiver = net.transports
            sender.send(net.ids[1], b"before")
            assert await receiver.incoming.receive() == (net.ids[0], b"before")
            await net.hosts[1].disconnect(net.ids[0])  # the receiving side drops the connection
            sender.send(net.ids[1], b"after")
            assert await receiver.incoming.receive() == (net.ids[0], b"after")
            assert sender.counters.streams_opened == 2
            assert sender.counters.write_failures == 1
            assert sender.counters.frames_dropped == 0


async def test_stopping_a_transport_ends_its_incoming_channel_and_unregisters_the_protocol():
    with trio.fail_after(TEST_TIMEOUT):
        async with network(2) as net:
            net.transports[1].send(net.ids[0], b"hello")
            assert await net.transports[0].incoming.receive() == (net.ids[1], b"hello")
            await net.stop(0)
            with pytest.raises(trio.EndOfChannel):
                await net.transports[0].incoming.receive()
            with pytest.raises(StreamFailure):  # protocol negotiation fails: nobody serves it any more
                await net.hosts[1].new_stream(net.ids[0], [PROTOCOL_ID])
            net.transports[0].send(net.ids[1], b"too late")
            assert net.transports[0].counters.frames_dropped == 1


async def test_a_validator_over_its_inbound_byte_rate_is_held_back_and_loses_nothing():
    with trio.fail_after(TEST_TIMEOUT):
        async with network(2, frame_size_max=5_000, queue_bytes_max=100_000, inbound_bytes_per_s=10_000) as net:
            frames = [bytes([i]) * 5_000 for i in range(8)]  # 40 KB against a burst of 10 KB and 10 KB/s
            for frame in frames:
                net.transports[1].send(net.ids[0], frame)
            assert [await net.transports[0].incoming.receive() for _ in frames] == [
                (net.ids[1], frame) for frame in frames
            ]
            assert net.transports[0].counters.inbound_throttled >= 1
            assert net.transports[1].counters.inbound_throttled == 0


async def test_a_validator_set_change_connects_newcomers_and_cuts_off_leavers():
    with trio.fail_after(TEST_TIMEOUT):
        async with network(3) as net:
            first, second, third = net.transports
            first.set_validators(net.ids[:1])  # alone: the others are not validators for it
            second.send(net.ids[0], b"not yet")
            while first.counters.streams_refused == 0:  # bounded by fail_after
                await trio.sleep(0.01)
            first.set_validators(net.ids)  # they join; the refused frame is sent again
            second.send(net.ids[0], b"now")
            assert [await first.incoming.receive() for _ in range(2)] == [
                (net.ids[1], b"not yet"),
                (net.ids[1], b"now"),
            ]
            first.set_validators([net.ids[0], net.ids[2]])  # validator 1 leaves
            first.send(net.ids[1], b"to a leaver")
            assert first.counters.frames_unrouted == 1
            third.send(net.ids[0], b"from a stayer")
            assert await first.incoming.receive() == (net.ids[2], b"from a stayer")
