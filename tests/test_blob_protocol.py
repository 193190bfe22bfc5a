"""``/p2pmed/blob/2`` between real hosts: only validators are served, each within its budgets."""

from __future__ import annotations

import multiaddr
import trio
from libp2p import new_host
from libp2p.peer.peerinfo import PeerInfo

from p2pmed.crypto import SigningKey
from p2pmed.net import key_pair_of
from p2pmed.net.blob_protocol import PROTOCOL_ID, BlobClient, BlobRequest, BlobResponse, BlobService

LISTEN = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
TEST_TIMEOUT = 30


async def test_a_validator_asking_faster_than_its_budget_is_refused_before_anything_is_read() -> None:
    answered: list[BlobRequest] = []

    def answer(request: BlobRequest, peer: object) -> BlobResponse:
        answered.append(request)
        return BlobResponse("", b"sealed", (b"wrap",))

    server_host = new_host(key_pair=key_pair_of(SigningKey.from_seed(b"\x01" * 32)))
    asker_host = new_host(key_pair=key_pair_of(SigningKey.from_seed(b"\x02" * 32)))
    stranger_host = new_host(key_pair=key_pair_of(SigningKey.from_seed(b"\x03" * 32)))
    validators = {server_host.get_id(), asker_host.get_id()}
    service = BlobService(server_host, answer, validators.__contains__, requests_per_s=0.01, streams_per_peer_max=2)
    request = BlobRequest("sealed", bytes(32))
    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            async with (
                server_host.run(listen_addrs=[LISTEN]),
                asker_host.run(listen_addrs=[LISTEN]),
                stranger_host.run(listen_addrs=[LISTEN]),
            ):
                await nursery.start(service.run)
                for host in (asker_host, stranger_host):
                    await host.connect(PeerInfo(server_host.get_id(), server_host.get_transport_addrs()))
                asker, stranger = BlobClient(asker_host), BlobClient(stranger_host)
                responses = [await asker.request(server_host.get_id(), request) for _ in range(20)]
                assert (await stranger.request(server_host.get_id(), request)).error.startswith("unreachable")
                nursery.cancel_scope.cancel()
    served = [response for response in responses if not response.error]
    assert len(served) == 1 and served[0].sealed == b"sealed"  # a burst of one; the next token is 100 s away
    assert len(answered) == 1 and service.served["throttled"] == 19
    assert service.served["strangers"] == 1


async def test_a_validator_holding_its_open_streams_gets_no_more_until_one_ends() -> None:
    server_host = new_host(key_pair=key_pair_of(SigningKey.from_seed(b"\x01" * 32)))
    asker_host = new_host(key_pair=key_pair_of(SigningKey.from_seed(b"\x02" * 32)))
    validators = {server_host.get_id(), asker_host.get_id()}
    service = BlobService(
        server_host,
        lambda request, peer: BlobResponse("", b"sealed", (b"wrap",)),
        validators.__contains__,
        streams_per_peer_max=2,
    )
    request = BlobRequest("sealed", bytes(32))
    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            async with server_host.run(listen_addrs=[LISTEN]), asker_host.run(listen_addrs=[LISTEN]):
                await nursery.start(service.run)
                await asker_host.connect(PeerInfo(server_host.get_id(), server_host.get_transport_addrs()))
                held = [await asker_host.new_stream(server_host.get_id(), [PROTOCOL_ID]) for _ in range(2)]
                for stream in held:  # an unfinished frame header: each stays open, being read
                    await stream.write(b"\x80")
                while service.gate.open_streams < 2:
                    await trio.sleep(0.01)
                third = await BlobClient(asker_host).request(server_host.get_id(), request)
                assert third.error and service.served["throttled"] == 1
                for stream in held:
                    await stream.reset()
                while service.gate.open_streams:
                    await trio.sleep(0.01)
                assert (await BlobClient(asker_host).request(server_host.get_id(), request)).sealed == b"sealed"
                nursery.cancel_scope.cancel()
