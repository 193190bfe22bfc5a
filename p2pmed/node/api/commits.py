"""What subscriptions push as blocks commit: items made from each committed block, through a
bounded buffer; a client that stops reading loses its subscription, never stalls the node."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import trio

from p2pmed.ledger.block import Block
from p2pmed.ledger.machine import BlockExecution
from p2pmed.node.api.port import NodePort

__all__ = ["SUBSCRIPTION_BUFFER", "each_commit"]

SUBSCRIPTION_BUFFER = 256


async def each_commit(
    node: NodePort, items: Callable[[Block, BlockExecution], list[dict[str, Any]]]
) -> AsyncIterator[dict[str, Any]]:
    """``items(block, execution)`` for each block that commits from now on. The listener is
    registered inside the generator, so that its ``finally`` always removes it."""
    send, receive = trio.open_memory_channel[dict[str, Any]](SUBSCRIPTION_BUFFER)

    def on_commit(block: Block, execution: BlockExecution) -> None:
        try:
            for item in items(block, execution):
                send.send_nowait(item)
        except trio.WouldBlock:  # the client stopped reading: end its subscription, not the node
            send.close()
            node.block_listeners.remove(on_commit)

    node.block_listeners.append(on_commit)
    try:
        async for item in receive:
            yield item
    finally:
        if on_commit in node.block_listeners:
            node.block_listeners.remove(on_commit)
