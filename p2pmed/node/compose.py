"""The composition root: a node built from its home, with its RPC methods (started from a
snapshot first when config ``[sync] fast_start`` asks and its store is empty), run until a
signal, or (for nodes a harness starts) until the process that started it is gone."""

from __future__ import annotations

import functools
import os
import signal

import structlog
import trio

from p2pmed.node.api.server import rpc_server
from p2pmed.node.daemon import Node
from p2pmed.node.fast_start import FastStartFailed, fast_start
from p2pmed.site.home import LoadedHome

__all__ = ["serve"]

log = structlog.get_logger(__name__)


ORPHAN_CHECK_INTERVAL_S = 0.5


async def serve(home: LoadedHome, *, exit_with_parent: bool = False) -> None:
    """Run the node with its RPC socket until SIGINT or SIGTERM, or with ``exit_with_parent``
    until the process that started it exits (however it died); then shut down cleanly."""
    # py-libp2p's yamux sends a window update after every read unless told otherwise;
    # go-yamux's rule (update once half the window is consumed) halves our frame count.
    os.environ.setdefault("PY_YAMUX_RELEASE_ON_READ", "0")
    parent = os.getppid()
    if home.config.fast_start:
        try:
            await fast_start(home)
        except FastStartFailed as error:
            log.warning("fast start failed; replaying the chain from genesis", reason=str(error))
    node = Node(home)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(node.run, rpc_server=lambda node: rpc_server(node, home.socket_path)))
            if exit_with_parent:
                nursery.start_soon(_stop_when_orphaned, parent, nursery.cancel_scope)
            async for signum in signals:
                log.info("shutting down", signal=signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


async def _stop_when_orphaned(parent: int, scope: trio.CancelScope) -> None:
    """A process whose parent dies is re-parented (to init or a subreaper): polling the parent id
    works however the parent died, SIGKILL included, and from any thread of it, unlike
    PR_SET_PDEATHSIG, which fires when the forking *thread* exits."""
    while os.getppid() == parent:
        await trio.sleep(ORPHAN_CHECK_INTERVAL_S)
    log.warning("shutting down: the process that started this node has exited", parent=parent)
    scope.cancel()
