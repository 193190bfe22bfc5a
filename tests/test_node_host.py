"""The node's libp2p host offers Noise only: an outsider cannot connect under a peer id whose key it
does not hold (``/plaintext/2.0.0``, which py-libp2p offers by default, let one connect as a
validator), while an honest Noise peer connects as ever."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import Ed25519PublicKey
from libp2p.crypto.keys import KeyPair
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport

from p2pmed.crypto import SigningKey
from p2pmed.net import key_pair_of, peer_id_of
from p2pmed.net.host import node_host

NODE = SigningKey.from_seed(b"\x61" * 32)
VALIDATOR = SigningKey.from_seed(b"\x62" * 32)  # the key the outsider does not hold
OUTSIDER = SigningKey.from_seed(b"\x63" * 32)
LISTEN = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]
WAIT_S = 20.0


class _ClaimedKey:
    """A private key that knows only someone else's public key: enough for plaintext, which
    asks the dialer to state a key and never to prove it holds it."""

    def __init__(self, public_key: bytes) -> None:
        self.public_key = Ed25519PublicKey.from_bytes(public_key)

    def get_public_key(self) -> Ed25519PublicKey:
        return self.public_key


def plaintext_host_claiming(claimed: bytes) -> IHost:
    claim = KeyPair(_ClaimedKey(claimed), Ed25519PublicKey.from_bytes(claimed))  # type: ignore[arg-type]
    plaintext = InsecureTransport(claim)
    return new_host(key_pair=key_pair_of(OUTSIDER), sec_opt={TProtocol(PLAINTEXT_PROTOCOL_ID): plaintext})


@asynccontextmanager
async def listening(host: IHost) -> AsyncIterator[PeerInfo]:
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(host.run(listen_addrs=LISTEN))
        yield PeerInfo(host.get_id(), host.get_addrs())


async def peers_seen_by(listener: IHost, dialer: IHost) -> list[ID]:
    """The peers ``listener`` is connected to once ``dialer`` has tried to connect to it."""
    async with listening(listener) as target, dialer.run(listen_addrs=LISTEN):
        try:
            with trio.fail_after(WAIT_S):
                await dialer.connect(target)
        except Exception:
            return list(listener.get_connected_peers())
        for _ in range(100):  # bounded: the listener may register the connection a moment later
            if listener.get_connected_peers():
                break
            await trio.sleep(0.02)
        return list(listener.get_connected_peers())


@pytest.mark.parametrize("listener", ["node_host", "py-libp2p default"])
async def test_a_plaintext_dialer_claiming_a_validators_id(listener: str) -> None:
    host = node_host(NODE) if listener == "node_host" else new_host(key_pair=key_pair_of(NODE))
    with trio.fail_after(2 * WAIT_S):
        peers = await peers_seen_by(host, plaintext_host_claiming(VALIDATOR.public_key))
    if listener == "node_host":
        assert peers == []
    else:  # what a node did before: the outsider is taken for the validator
        assert peers == [peer_id_of(VALIDATOR.public_key)]


async def test_a_noise_peer_still_connects_to_a_node() -> None:
    with trio.fail_after(2 * WAIT_S):
        peers = await peers_seen_by(node_host(NODE), new_host(key_pair=key_pair_of(OUTSIDER)))
    assert peers == [peer_id_of(OUTSIDER.public_key)]
