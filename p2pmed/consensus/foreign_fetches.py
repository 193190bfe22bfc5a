"""Block fetches from a node of another epoch, answered by its peer's host from the store.

A replica answers the block fetches of its own epoch's validators
(``Replica._on_fetch_blocks``): a fetch names the asker by its index in the set, and the
answer goes to that index. A node that fell behind across the end of an epoch (down,
partitioned or paused while it ended) still runs the replica of that epoch and asks that
epoch's validators by the indices they had then. Those that moved on know it by another
index in their set (every index after a leaving validator's shifts) or not at all (it was
voted out): the fetch would be refused as relayed or as a stranger's, and the node would
never reach the end of its epoch, where its host starts the next epoch's replica (or none,
and it follows the chain as an outsider).

So a host answers itself every fetch its replica cannot: from a node outside its current
set, from one whose index there is not the one the fetch names, or when it runs no replica.
The answer is committed blocks with their certificates, which the asker checks against its
own epoch's set as it checks any; each asker is served at most once per
``fetch_serve_interval_ms``, as a replica serves its peers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p2pmed.consensus.messages import FetchBlocks, Message

__all__ = ["ASKERS_MAX", "ForeignFetches"]

ASKERS_MAX = 1_024
"""Askers remembered for the rate limit; beyond it, those served longest ago are forgotten."""


@dataclass
class ForeignFetches:
    interval_ms: int
    _served_at_ms: dict[bytes, int] = field(default_factory=dict)

    @staticmethod
    def is_foreign(message: Message, index: int | None, replica_running: bool) -> bool:
        """Whether ``message``, from the peer at ``index`` in this node's current set (None:
        not in it), is a block fetch this node's replica cannot answer."""
        return isinstance(message, FetchBlocks) and (not replica_running or index != message.replica)

    def admit(self, asker: bytes, now_ms: int) -> bool:
        """Whether to answer ``asker`` now (not if it was answered less than an interval ago)."""
        served_ms = self._served_at_ms.get(asker)
        if served_ms is not None and now_ms - served_ms < self.interval_ms:
            return False
        self._served_at_ms.pop(asker, None)
        self._served_at_ms[asker] = now_ms
        while len(self._served_at_ms) > ASKERS_MAX:
            del self._served_at_ms[next(iter(self._served_at_ms))]
        return True
