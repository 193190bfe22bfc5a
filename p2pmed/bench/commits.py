"""When each node announces each transaction committed: one ``chain.subscribe`` per node.

A transaction's commit is timed at the node it was submitted to, when that
node's block feed announces the block holding it; the time is taken as the
notification is read, so it includes the client's own delay in reading it (a
few ms unless the client is starved of CPU). The watchers run for the whole
benchmark, in threads of their own, so no block falls between two steps.

A node ends a subscription whose client reads too slowly (its buffer holds
``SUBSCRIPTION_BUFFER`` blocks); the watcher then subscribes again and counts a
drop, and any transaction committed meanwhile counts as not committed: the
report shows the drops, so a starved client is not mistaken for a slow network.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Self

from p2pmed.rpc.client import NodeNotRunning, RpcClient, RpcError

__all__ = ["CommitWatchers"]

POLL_S = 0.2
RESUBSCRIBE_S = 0.2
SUBSCRIBE_TIMEOUT_S = 10.0


class CommitWatchers:
    """``committed_at[node][tx_id_hex]``: when ``node`` first announced that transaction (monotonic s)."""

    def __init__(self, socket_paths: list[Path]) -> None:
        self.committed_at: list[dict[str, float]] = [{} for _ in socket_paths]
        self.drops_by_node = [0 for _ in socket_paths]  # one element per thread: no lock needed
        self._subscribed = [threading.Event() for _ in socket_paths]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(node, path), name=f"bench-watch-{node}", daemon=True)
            for node, path in enumerate(socket_paths)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def drops(self) -> int:
        return sum(self.drops_by_node)

    def wait_subscribed(self, timeout_s: float) -> bool:
        """True once every node has accepted its subscription (within ``timeout_s`` in all)."""
        deadline = time.monotonic() + timeout_s
        return all(event.wait(max(0.0, deadline - time.monotonic())) for event in self._subscribed)

    def _watch(self, node: int, socket_path: Path) -> None:
        seen = self.committed_at[node]
        while not self._stop.is_set():
            try:
                with RpcClient(socket_path, timeout=SUBSCRIBE_TIMEOUT_S).subscribe("chain.subscribe") as blocks:
                    self._subscribed[node].set()
                    while not self._stop.is_set():
                        try:
                            block = blocks.next(POLL_S)
                        except TimeoutError:
                            continue
                        now = time.monotonic()
                        for tx_id in block["tx_ids"]:
                            seen.setdefault(tx_id, now)
            except (StopIteration, NodeNotRunning, RpcError, OSError):
                if self._subscribed[node].is_set() and not self._stop.is_set():
                    self.drops_by_node[node] += 1
            self._stop.wait(RESUBSCRIBE_S)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(POLL_S + RESUBSCRIBE_S + SUBSCRIBE_TIMEOUT_S)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
