"""Keeping a connection to a validator up: gossipsub only meshes with connected peers, and an
observer syncs from whichever validators it reaches."""

from __future__ import annotations

from collections.abc import Callable

import multiaddr
import structlog
import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

__all__ = ["keep_connected"]

log = structlog.get_logger(__name__)

DIAL_DELAY_MIN_S = 0.2
DIAL_DELAY_MAX_S = 10.0
DIAL_TIMEOUT_S = 10.0
CONNECTED_CHECK_S = 1.0


async def keep_connected(
    host: IHost, peer_id: ID, address: multiaddr.Multiaddr, on_change: Callable[[bool], None]
) -> None:
    """Dial ``peer_id`` at ``address`` whenever it is not connected, with capped exponential
    backoff; ``on_change(connected)`` when that changes (a drop and reconnect within one
    check goes unnoticed)."""
    delay = DIAL_DELAY_MIN_S
    connected = False
    while True:
        if peer_id in host.get_connected_peers():
            if not connected:
                connected = True
                on_change(True)
            delay = DIAL_DELAY_MIN_S
            await trio.sleep(CONNECTED_CHECK_S)
            continue
        if connected:
            connected = False
            on_change(False)
        with trio.move_on_after(DIAL_TIMEOUT_S):
            try:
                await host.connect(PeerInfo(peer_id, [address]))
                continue
            except Exception as error:  # refused, reset, handshake failure: retry later
                log.debug("dial failed", peer=str(peer_id), error=repr(error), retry_s=delay)
        await trio.sleep(delay)
        delay = min(2 * delay, DIAL_DELAY_MAX_S)
