"""What the replica asks its host to do. The host carries them out in list order.

The replica emits ``Persist`` before the ``Send``/``Broadcast`` that depends on
it, so a host that follows the order never sends a vote it could forget in a
crash (etcd's Ready: persist, then send, then apply).
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmed.consensus.messages import CommitCertificate, Message
from p2pmed.ledger.block import Block

__all__ = ["Action", "Broadcast", "CommitBlock", "Persist", "Send", "ServeBlocks"]


@dataclass(frozen=True)
class Persist:
    """Durably write these consensus records (``None`` deletes) before the next action."""

    records: dict[str, bytes | None]


@dataclass(frozen=True)
class Send:
    to: int
    message: Message


@dataclass(frozen=True)
class Broadcast:
    """Send to every other replica."""

    message: Message


@dataclass(frozen=True)
class CommitBlock:
    """The next block of the chain was decided: execute and store it with its certificate."""

    block: Block
    certificate: CommitCertificate


@dataclass(frozen=True)
class ServeBlocks:
    """Replica ``to`` asked for committed blocks from ``from_height``: answer from the store."""

    to: int
    from_height: int


Action = Persist | Send | Broadcast | CommitBlock | ServeBlocks
