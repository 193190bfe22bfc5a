"""The composition root: a node built from its home, with its RPC methods, run until a signal."""

from __future__ import annotations

import functools
import os
import signal

import structlog
import trio

from p2pmed.node.api.server import rpc_server
from p2pmed.node.daemon import Node
from p2pmed.site.home import LoadedHome

__all__ = ["serve"]

log = structlog.get_logger(__name__)


async def serve(home: LoadedHome) -> None:
    """Run the node with its RPC socket until SIGINT or SIGTERM; then shut down cleanly."""
    # py-libp2p's yamux sends a window update after every read unless told otherwise;
    # go-yamux's rule (update once half the window is consumed) halves our frame count.
    os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")
    node = Node(home)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(node.run, rpc_server=lambda node: rpc_server(node, home.socket_path)))
            async for signum in signals:
                log.info("shutting down", signal=signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
