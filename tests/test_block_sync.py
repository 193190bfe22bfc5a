"""``/p2pmed/blocks/1`` between real hosts: admitted peers are answered within their budgets,
strangers are reset, and an asker
turns whatever a server sends into an answer or an error, never an exception."""

from __future__ import annotations

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import INetStream
from libp2p.peer.peerinfo import PeerInfo

from p2pmed.crypto import SigningKey
from p2pmed.net import encode_frame, key_pair_of
from p2pmed.net.block_sync import PROTOCOL_ID, BlockSyncClient, BlockSyncService, SyncAnswer
from test_light_client import chain

LISTEN = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
TEST_TIMEOUT = 30


async def test_an_admitted_peer_gets_blocks_within_its_budgets_and_a_stranger_nothing() -> None:
    items = chain(3)
    asked: list[int] = []

    def answer(from_height: int) -> SyncAnswer:
        asked.append(from_height)
        return SyncAnswer("", 3, tuple(items[from_height - 1 :]))

    hosts = [new_host(key_pair=key_pair_of(SigningKey.from_seed(bytes([i + 1]) * 32))) for i in range(3)]
    server, observer, stranger = hosts
    service = BlockSyncService(server, answer, {observer.get_id()}.__contains__, requests_per_s=1.0)  # bursts of 2
    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            async with server.run(listen_addrs=[LISTEN]), observer.run(listen_addrs=[LISTEN]):
                async with stranger.run(listen_addrs=[LISTEN]):
                    await nursery.start(service.run)
                    for host in (observer, stranger):
                        await host.connect(PeerInfo(server.get_id(), server.get_transport_addrs()))
                    client = BlockSyncClient(observer)
                    first = await client.request(server.get_id(), 1)
                    second = await client.request(server.get_id(), 3)
                    third = await client.request(server.get_id(), 1)
                    refused = await BlockSyncClient(stranger).request(server.get_id(), 1)
                    nursery.cancel_scope.cancel()
    assert (first.error, first.head, first.blocks) == ("", 3, tuple(items))
    assert second.blocks == (items[2],) and asked == [1, 3]
    assert third.error.startswith("unreachable") and service.served["throttled"] == 1
    assert refused.error.startswith("unreachable") and service.served["strangers"] == 1


async def test_garbage_from_a_server_is_an_error_answer_for_the_asker() -> None:
    async def garbage(stream: INetStream) -> None:
        await stream.read(64)
        await stream.write(encode_frame(b"\xa1\x63not\x00"))  # CBOR, but no SyncAnswer
        await stream.close()

    server, observer = (new_host(key_pair=key_pair_of(SigningKey.from_seed(bytes([i + 5]) * 32))) for i in range(2))
    with trio.fail_after(TEST_TIMEOUT):
        async with server.run(listen_addrs=[LISTEN]), observer.run(listen_addrs=[LISTEN]):
            server.set_stream_handler(PROTOCOL_ID, garbage)
            await observer.connect(PeerInfo(server.get_id(), server.get_transport_addrs()))
            answer = await BlockSyncClient(observer).request(server.get_id(), 1)
    assert answer.error.startswith("malformed answer") and answer.blocks == ()
