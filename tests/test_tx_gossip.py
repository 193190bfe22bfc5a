"""Transaction gossip: the batch wire format, the pending queue, and real GossipSub meshes.

The network tests run 4 py-libp2p hosts (TCP + Noise + Yamux) in this process
on 127.0.0.1 with ephemeral ports, every pair connected, and start only once
each host has every other in its mesh. Every test is bounded by
``trio.fail_after``; every loop is bounded in count too. Nothing asserts on
timing: a step awaits what proves it happened (a batch arriving, a counter
reaching its value).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import cbor2
import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.peer.peerinfo import PeerInfo
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.rpc_queue import OutBoundQueueSize, RpcQueue

from p2pmed import codec
from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.net import REJECT_REASONS, TxBatch, TxGossip, key_pair_of, peer_id_of, tx_topic
from p2pmed.net.tx_gossip import REJECTIONS_BURST

CHAIN = "test-chain"
TOPIC = tx_topic(CHAIN)
TEST_TIMEOUT = 60  # generous: a loaded 2-core machine; the tests take a few seconds each
LISTEN = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
SENDER = SigningKey.from_seed(b"\x01" * 32)


def probe(nonce: int, chain_id: str = CHAIN) -> Transaction:
    return sign_transaction(SENDER, chain_id, "load.probe", nonce, Probe("p"))


def forged(tx: Transaction) -> Transaction:
    """``tx`` with a signature that does not verify."""
    return Transaction(tx.type, tx.chain_id, tx.sender, tx.nonce, tx.body, bytes(64))


class Verifier:
    """The node's accept callback in small: verify a transaction once, then remember it."""

    def __init__(self) -> None:
        self.verified: set[bytes] = set()
        self.calls: Counter[bytes] = Counter()

    def __call__(self, tx: Transaction) -> bool:
        self.calls[tx.id] += 1
        if tx.id in self.verified:
            return True
        if not tx.signature_is_valid():
            return False
        self.verified.add(tx.id)
        return True


# -- wire format and queues, without a network -------------------------------------


def test_a_batch_is_the_canonical_cbor_map_of_its_transactions():
    txs = (probe(0), probe(1), probe(2, chain_id="other-chain"))
    data = codec.encode(TxBatch(txs))
    # {"txs": [tx, tx, tx]}, each transaction's own canonical encoding verbatim
    assert data == b"\xa1\x63txs\x83" + b"".join(tx.encoded for tx in txs)
    assert codec.decode(TxBatch, data, len(data)) == TxBatch(txs)
    assert TOPIC == "/p2pmed/test-chain/tx/1"
    with pytest.raises(ValueError, match="at least one"):
        TxBatch(())
    for bad in (
        cbor2.dumps({"txs": []}),
        cbor2.dumps({"txs": [txs[0].encoded]}),
        cbor2.dumps({"txs": [], "x": 1}),
        data + b"\x00",
    ):
        with pytest.raises(codec.CodecError):
            codec.decode(TxBatch, bad, 1 << 20)


def offline_gossip(**options: Any) -> TxGossip:
    return TxGossip(new_host(key_pair=key_pair_of(SigningKey.from_seed(b"\x30" * 32))), CHAIN, Verifier(), **options)


def test_a_restarted_publisher_never_reuses_a_sequence_number_its_peers_saw():
    # Message ids are publisher + seqno: a reused seqno is dropped as already seen.
    before = offline_gossip()
    last = 0
    for _ in range(10_000):  # a busy node: far more messages than seconds before its restart
        last = int.from_bytes(before.pubsub._next_seqno(), "big")
    after = offline_gossip()  # the same key, started again at once
    assert int.from_bytes(after.pubsub._next_seqno(), "big") > last


def test_publish_refuses_transactions_that_would_spoil_a_batch():
    gossip = offline_gossip(batch_bytes_max=1000, pending_bytes_max=1000)
    with pytest.raises(ValueError, match="refused"):
        gossip.publish(forged(probe(0)))
    with pytest.raises(ValueError, match="refused"):
        gossip.publish(probe(0, chain_id="other-chain"))
    big = sign_transaction(SENDER, CHAIN, "test.blob", 0, {"blob": bytes(1000)})
    with pytest.raises(ValueError, match="does not fit"):
        gossip.publish(big)
    assert gossip.pending() == 0
    gossip.publish(probe(0))
    assert gossip.pending() == 1


def test_a_full_pending_queue_drops_the_oldest_transactions_and_counts_them():
    gossip = offline_gossip(pending_txs_max=3)
    txs = [probe(i) for i in range(5)]
    for tx in txs:
        gossip.publish(tx)
    assert gossip.pending() == 3
    assert gossip.counters.txs_dropped == 2
    assert list(gossip._pending) == txs[2:]


async def test_the_flusher_waits_for_a_backlogged_mesh_peer_but_leaves_a_slow_one_behind():
    gossip = offline_gossip(outbound_wait_max=0.05)
    mesh_peer, other_peer = (peer_id_of(SigningKey.from_seed(bytes([seed]) * 32).public_key) for seed in (0x50, 0x51))
    queues = {mesh_peer: RpcQueue(), other_peer: RpcQueue()}
    gossip.pubsub.peer_queues.update(queues)
    gossip.router.mesh[TOPIC] = {mesh_peer}

    def fill(queue: RpcQueue) -> None:
        for _ in range(OutBoundQueueSize // 2 + 1):
            assert queue.push(rpc_pb2.RPC())

    async def drain(queue: RpcQueue, delay: float = 0) -> None:
        await trio.sleep(delay)
        for _ in range(OutBoundQueueSize):
            if not len(queue):
                break
            await queue.pop()

    with trio.fail_after(TEST_TIMEOUT):
        fill(queues[other_peer])
        assert await gossip._wait_for_outbound_room()  # only the topic's mesh peers count
        fill(queues[mesh_peer])
        assert not await gossip._wait_for_outbound_room()  # waited outbound_wait_max, then gave up on it
        assert await gossip._wait_for_outbound_room()  # a slow peer is not waited for again...
        await drain(queues[mesh_peer])
        assert await gossip._wait_for_outbound_room()  # ...until a batch finds its queue drained
        fill(queues[mesh_peer])
        gossip.outbound_wait_max = TEST_TIMEOUT
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, queues[mesh_peer], 0.05)
            assert await gossip._wait_for_outbound_room()
            assert len(queues[mesh_peer]) <= OutBoundQueueSize // 2  # it returned once the queue fell below half


def test_bad_settings_are_refused():
    host = new_host(key_pair=key_pair_of(SigningKey.from_seed(b"\x31" * 32)))
    for options in (
        {"batch_txs_max": 0},
        {"batch_bytes_max": 10},
        {"batch_bytes_max": 1 << 20},
        {"pending_bytes_max": 1000},
    ):
        with pytest.raises(ValueError):
            TxGossip(host, CHAIN, Verifier(), **options)
    with pytest.raises(ValueError, match="chain_id"):
        TxGossip(host, "", Verifier())


# -- real hosts -------------------------------------------------------------------


@dataclass
class Network:
    hosts: list[IHost]
    gossips: list[TxGossip]
    verifiers: list[Verifier]
    scopes: list[trio.CancelScope]
    stopped: list[trio.Event]

    async def run(self, index: int, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self.scopes[index]:
                await self.gossips[index].run(task_status=task_status)
        finally:
            self.stopped[index].set()

    async def stop(self, index: int) -> None:
        self.scopes[index].cancel()
        await self.stopped[index].wait()


@asynccontextmanager
async def gossip_network(count: int = 4, observers: int = 0, **options: Any) -> AsyncIterator[Network]:
    """``count`` hosts (validators, in the full mesh), all connected to each other, each with
    every other in its mesh; then ``observers`` more, each connected to host 0 only."""
    keys = [SigningKey.from_seed(bytes([0x40 + i]) * 32) for i in range(count + observers)]
    hosts = [new_host(key_pair=key_pair_of(key)) for key in keys]
    verifiers = [Verifier() for _ in hosts]
    validators = {host.get_id() for host in hosts[:count]}
    links = [*itertools.combinations(range(count), 2), *((0, count + i) for i in range(observers))]
    # The gossips run in a nursery opened before host.run() (DESIGN.md), so the hosts
    # close their connections before the pubsub services stop, as TxGossip advises.
    async with trio.open_nursery() as outer:
        async with AsyncExitStack() as stack:
            for host in hosts:
                await stack.enter_async_context(host.run(listen_addrs=[LISTEN]))
            gossips = [
                TxGossip(host, CHAIN, verifier, full_mesh=validators.__contains__, **options)
                for host, verifier in zip(hosts, verifiers, strict=True)
            ]
            net = Network(hosts, gossips, verifiers, [trio.CancelScope() for _ in hosts], [trio.Event() for _ in hosts])
            for index in range(len(hosts)):
                await outer.start(net.run, index)
            async with trio.open_nursery() as dialers:
                for i, j in links:
                    peer = PeerInfo(hosts[j].get_id(), hosts[j].get_transport_addrs())
                    dialers.start_soon(hosts[i].connect, peer)
            for i, j in links:
                await gossips[i].pubsub.wait_for_mesh(hosts[j].get_id(), TOPIC, timeout=TEST_TIMEOUT)
                await gossips[j].pubsub.wait_for_mesh(hosts[i].get_id(), TOPIC, timeout=TEST_TIMEOUT)
            yield net
        outer.cancel_scope.cancel()


async def receive_txs(gossip: TxGossip, count: int) -> list[Transaction]:
    """The next ``count`` transactions ``gossip`` hands over, in order."""
    txs: list[Transaction] = []
    for _ in range(count):  # at least one transaction per batch
        if len(txs) >= count:
            break
        txs.extend(await gossip.incoming.receive())
    assert len(txs) == count, f"expected {count} transactions, got {len(txs)}"
    return txs


def assert_nothing_waiting(gossips: list[TxGossip]) -> None:
    for gossip in gossips:
        with pytest.raises(trio.WouldBlock):
            gossip.incoming.receive_nowait()


async def receive_until(gossip: TxGossip, last: tuple[Transaction, ...]) -> list[tuple[Transaction, ...]]:
    """The batches ``gossip`` hands over, up to and including ``last``."""
    got = []
    for _ in range(10):
        got.append(await gossip.incoming.receive())
        if got[-1] == last:
            return got
    raise AssertionError(f"{last} did not come among the first 10 batches: {got}")


async def wait_until(predicate: Callable[[], bool]) -> None:
    for _ in range(int(TEST_TIMEOUT / 0.01)):
        if predicate():
            return
        await trio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_a_batch_reaches_every_other_host_once_and_never_its_publisher_and_a_republished_one_again():
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(4) as net:
            first, marker = probe(0), probe(1)
            net.gossips[0].publish(first)
            for gossip in net.gossips[1:]:
                assert await gossip.incoming.receive() == (first,)
            # The same batch bytes published again (the rebroadcast of a transaction still
            # waiting) are a new message: message ids are publisher and sequence number.
            net.gossips[0].publish(first)
            for gossip in net.gossips[1:]:
                assert await gossip.incoming.receive() == (first,)
            net.gossips[0].publish(marker)
            for gossip in net.gossips[1:]:
                assert await gossip.incoming.receive() == (marker,)
            assert_nothing_waiting(net.gossips)
            # A receiver validates each message once, however many copies reach it; the
            # publisher checks it in publish() and again in its own validator.
            assert [verifier.calls[first.id] for verifier in net.verifiers] == [4, 2, 2, 2]
            assert [verifier.calls[marker.id] for verifier in net.verifiers] == [2, 1, 1, 1]
            assert net.gossips[0].counters.batches_published == net.gossips[0].counters.txs_published == 3
            assert net.gossips[0].counters.batches_received == 0
            assert [gossip.counters.batches_received for gossip in net.gossips[1:]] == [3, 3, 3]
            for gossip in net.gossips:
                assert gossip.counters.batches_rejected == dict.fromkeys(REJECT_REASONS, 0)
                assert gossip.counters.batches_dropped == gossip.counters.txs_dropped == 0


async def test_in_a_full_mesh_a_batch_reaches_each_peer_once_from_its_publisher_with_no_relay_or_idontwant():
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(4) as net:
            copies: list[list[tuple[bytes, bytes]]] = [[] for _ in net.gossips]  # (forwarder, message id)
            idontwants: list[int] = [0 for _ in net.gossips]
            for index, gossip in enumerate(net.gossips):
                push_msg, handle_idontwant = gossip.pubsub.push_msg, gossip.router.handle_idontwant

                async def counted_push(
                    forwarder: Any, message: Any, index: int = index, push_msg: Any = push_msg
                ) -> None:
                    copies[index].append((forwarder.to_bytes(), hashlib.sha256(message.data).digest()))
                    await push_msg(forwarder, message)

                async def counted_idontwant(*args: Any, index: int = index, handle: Any = handle_idontwant) -> None:
                    idontwants[index] += 1
                    await handle(*args)

                gossip.pubsub.push_msg = counted_push  # type: ignore[method-assign]
                gossip.router.handle_idontwant = counted_idontwant  # type: ignore[method-assign]
            batch = probe(0)
            net.gossips[0].publish(batch)
            for gossip in net.gossips[1:]:
                assert await gossip.incoming.receive() == (batch,)
            # Each host then publishes a marker, and every host waits for all of them: a relay
            # of the first batch would have been written on the same stream before its marker.
            markers = [probe(1 + index) for index in range(4)]
            for gossip, marker in zip(net.gossips, markers, strict=True):
                gossip.publish(marker)
            for index, gossip in enumerate(net.gossips):
                others = {(marker,) for position, marker in enumerate(markers) if position != index}
                got = set()
                for _ in range(3):
                    got.add(await gossip.incoming.receive())
                assert got == others
            batch_id = hashlib.sha256(codec.encode(TxBatch((batch,)))).digest()
            publisher = net.hosts[0].get_id().to_bytes()
            for index in (1, 2, 3):
                assert [forwarder for forwarder, message_id in copies[index] if message_id == batch_id] == [publisher]
            assert idontwants == [0, 0, 0, 0]


async def test_an_observer_linked_to_one_validator_gets_every_batch_and_what_it_publishes_reaches_all():
    """The full-mesh shortcut (no relay of a batch that came straight from its validator
    publisher) holds among validators only: a subscriber outside the mesh is relayed to."""
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(4, observers=1) as net:
            validators, observer = net.gossips[:4], net.gossips[4]
            batches = [probe(index) for index in range(4)]
            for gossip, tx in zip(validators, batches, strict=True):
                gossip.publish(tx)
            got: set[Transaction] = set()
            for _ in range(4):
                got.update(await observer.incoming.receive())
            assert got == set(batches)
            for index, gossip in enumerate(validators):
                others = {batch for position, batch in enumerate(batches) if position != index}
                assert {(await gossip.incoming.receive())[0] for _ in range(3)} == others
            own = probe(10)
            observer.publish(own)
            for gossip in validators:
                assert await gossip.incoming.receive() == (own,)
            assert_nothing_waiting(net.gossips)


async def test_2000_transactions_published_quickly_all_arrive_in_a_few_batches():
    txs = [probe(nonce) for nonce in range(2000)]
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(4) as net:
            publisher = net.gossips[0]
            received: dict[int, list[Transaction]] = {}

            async def collect(index: int) -> None:
                received[index] = await receive_txs(net.gossips[index], len(txs))

            started = trio.current_time()
            async with trio.open_nursery() as nursery:
                for index in (1, 2, 3):
                    nursery.start_soon(collect, index)
                for tx in txs:
                    publisher.publish(tx)
            elapsed = trio.current_time() - started
            for index in (1, 2, 3):
                assert len(received[index]) == len(set(received[index])) == len(txs)
                assert set(received[index]) == set(txs)
                assert net.gossips[index].counters.batches_received == publisher.counters.batches_published
            counters = publisher.counters
            assert counters.txs_published == len(txs) and counters.txs_dropped == 0
            assert counters.batches_published <= len(txs) // 20  # batched, not one message per transaction
            assert_nothing_waiting(net.gossips)
            print(
                f"\n2000 txs to 3 hosts in {elapsed:.2f} s: {len(txs) / elapsed:.0f} txs/s, "
                f"{counters.batches_published} batches"
            )


async def test_bad_batches_from_a_misbehaving_peer_are_rejected_counted_and_not_delivered():
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(4) as net:
            honest, rogue = net.gossips[:3], net.gossips[3]
            rogue.pubsub.remove_topic_validator(TOPIC)  # it publishes whatever bytes it likes
            hidden, foreign = probe(10), probe(11, chain_id="other-chain")
            bad = [
                ("malformed", b"\xff not CBOR"),
                ("malformed", cbor2.dumps({"txs": []})),
                ("too_big", bytes(rogue.batch_bytes_max + 1)),
                ("bad_tx", codec.encode(TxBatch((hidden, forged(probe(12)))))),
                ("bad_tx", codec.encode(TxBatch((hidden, foreign)))),
            ]
            for _reason, data in bad:
                await rogue.pubsub.publish(TOPIC, data)
            expected = {**dict.fromkeys(REJECT_REASONS, 0), "too_big": 1, "malformed": 2, "bad_tx": 2}
            for gossip in honest:
                await wait_until(lambda gossip=gossip: gossip.counters.batches_rejected == expected)
            # Good traffic goes on, the rogue's included: its valid batches are still accepted.
            good, from_rogue = probe(13), probe(14)
            honest[0].publish(good)
            await rogue.pubsub.publish(TOPIC, codec.encode(TxBatch((from_rogue,))))
            for gossip in honest[1:]:
                assert sorted(await receive_txs(gossip, 2), key=lambda tx: tx.nonce) == [good, from_rogue]
            assert await honest[0].incoming.receive() == (from_rogue,)
            assert await rogue.incoming.receive() == (good,)
            assert_nothing_waiting(net.gossips)  # `hidden` never came out of a rejected batch
            for gossip in honest:
                assert gossip.counters.batches_received == 2 - (gossip is honest[0])


async def test_a_batch_closes_at_its_byte_limit():
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(2, batch_bytes_max=1300) as net:  # 7 of these transactions fill a batch
            txs = [probe(nonce) for nonce in range(30)]
            for tx in txs:
                net.gossips[0].publish(tx)
            batches = []
            for _ in range(len(txs)):
                if sum(map(len, batches)) == len(txs):
                    break
                batches.append(await net.gossips[1].incoming.receive())
            assert sorted(map(len, batches)) == [2, 7, 7, 7, 7]  # batches may arrive in any order
            assert all(len(codec.encode(TxBatch(batch))) <= 1300 for batch in batches)
            assert sorted((tx for batch in batches for tx in batch), key=lambda tx: tx.nonce) == txs


async def test_stopping_ends_the_incoming_channel_and_later_publishes_are_dropped():
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(2) as net:
            net.gossips[0].publish(probe(0))
            assert await net.gossips[1].incoming.receive() == (probe(0),)
            await net.stop(1)
            with pytest.raises(trio.EndOfChannel):
                await net.gossips[1].incoming.receive()
            net.gossips[1].publish(probe(1))
            assert net.gossips[1].counters.txs_dropped == 1
            assert net.gossips[1].pending() == 0
            with pytest.raises(RuntimeError, match="runs once"):
                await net.gossips[1].run()


async def test_batches_from_a_publisher_not_admitted_are_rejected_before_decoding():
    keys = [SigningKey.from_seed(bytes([0x40 + i]) * 32) for i in range(4)]  # gossip_network's hosts
    admitted = {peer_id_of(key.public_key) for key in keys[:3]}
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(4, admitted=admitted.__contains__) as net:
            honest, outsider = net.gossips[:3], net.gossips[3]
            outsider.pubsub.remove_topic_validator(TOPIC)  # it publishes regardless
            await outsider.pubsub.publish(TOPIC, codec.encode(TxBatch((probe(20),))))
            for gossip in honest:
                await wait_until(lambda gossip=gossip: gossip.counters.batches_rejected["not_admitted"] == 1)
            honest[0].publish(probe(21))
            for gossip in honest[1:]:
                assert await receive_txs(gossip, 1) == [probe(21)]
            assert_nothing_waiting(honest)
            for gossip in honest:
                assert gossip.counters.batches_rejected["malformed"] == gossip.counters.batches_rejected["bad_tx"] == 0


async def test_a_publisher_over_its_byte_budget_has_its_batches_rejected():
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(2, batch_bytes_max=1300, publisher_bytes_per_s=100) as net:
            sender, receiver = net.gossips
            sender.pubsub.remove_topic_validator(TOPIC)  # floods regardless of its own budget
            for nonce in range(8):  # 8 batches of ~900 bytes at once, against a burst of 2600 and 100 bytes/s
                await sender.pubsub.publish(
                    TOPIC, codec.encode(TxBatch(tuple(probe(nonce * 10 + i) for i in range(6))))
                )
            await wait_until(lambda: receiver.counters.batches_rejected["over_budget"] >= 1)
            assert receiver.counters.batches_received + receiver.counters.batches_rejected["over_budget"] <= 8


@pytest.mark.parametrize("validator", [False, True], ids=["outsider", "validator"])
async def test_a_peer_forwarding_rejected_batches_beyond_its_allowance_is_disconnected_a_validator_never(
    validator: bool,
):
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(2, unbudgeted=lambda peer: validator) as net:
            spammer, receiver = net.gossips
            spammer.pubsub.remove_topic_validator(TOPIC)  # it publishes junk regardless
            for number in range(REJECTIONS_BURST + 8):  # bounded: the allowance and then some
                await spammer.pubsub.publish(TOPIC, b"junk %d" % number)
                await trio.sleep(0.01)  # py-libp2p drops what overflows a 32-message outbound queue
            await wait_until(lambda: receiver.counters.batches_rejected["malformed"] >= REJECTIONS_BURST + 1)
            await trio.sleep(0.2)
            connected = spammer.host.get_id() in receiver.host.get_connected_peers()
            assert (receiver.counters.peers_disconnected, connected) == ((0, True) if validator else (1, False))


async def test_an_unbudgeted_publisher_such_as_a_validator_is_never_over_budget():
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(
            2, batch_bytes_max=1300, publisher_bytes_per_s=100, unbudgeted=lambda peer: True
        ) as net:
            sender, receiver = net.gossips
            for nonce in range(8):
                await sender.pubsub.publish(
                    TOPIC, codec.encode(TxBatch(tuple(probe(nonce * 10 + i) for i in range(6))))
                )
            assert len(await receive_txs(receiver, 48)) == 48
            assert receiver.counters.batches_rejected["over_budget"] == 0


@pytest.mark.parametrize("junk", [b"\x05\xff\xff\xff\xff\xff", b"\x03\x0a\x05\x01"], ids=["not-protobuf", "truncated"])
async def test_an_rpc_that_does_not_parse_ends_that_peer_s_stream_not_the_node(junk: bytes):
    with trio.fail_after(TEST_TIMEOUT):
        async with gossip_network(2) as net:
            target = net.hosts[0]
            outsider = new_host(key_pair=key_pair_of(SigningKey.from_seed(b"\x77" * 32)))
            async with outsider.run(listen_addrs=[LISTEN]):
                await outsider.connect(PeerInfo(target.get_id(), target.get_transport_addrs()))
                stream = await outsider.new_stream(target.get_id(), [PROTOCOL_ID_V11])
                await stream.write(junk)
                await wait_until(lambda: net.gossips[0].counters.streams_failed == 1)
            net.gossips[1].publish(probe(30))
            assert await receive_txs(net.gossips[0], 1) == [probe(30)]
