"""Application state as an ordered key-value map, read through and written into overlays.

Rules never touch the store. They read through a ``StateOverlay`` and write into
it; the block executor nests one overlay per transaction inside one per block, so
a transaction that is refused halfway leaves nothing behind, and the block's
changes reach the store in the same SQL transaction as the block itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, TypeVar

from p2pmed import codec

__all__ = ["ScanState", "StateOverlay", "StateReader"]

T = TypeVar("T")
STATE_VALUE_SIZE_MAX = 1 << 20


class StateReader(Protocol):
    def state_get(self, key: str) -> bytes | None: ...


class ScanState(StateReader, Protocol):
    """A state that can also list its entries under a key prefix, in key order (a store)."""

    def state_items(self, prefix: str) -> Iterator[tuple[str, bytes]]: ...


class StateOverlay:
    """Buffered writes over a reader; ``changes()`` lists them (``None`` = deleted)."""

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._writes: dict[str, bytes | None] = {}

    def state_get(self, key: str) -> bytes | None:
        if key in self._writes:
            return self._writes[key]
        return self._base.state_get(key)

    def get(self, cls: type[T], key: str) -> T | None:
        """The typed value at ``key``, or None; the bytes are decoded strictly."""
        data = self.state_get(key)
        return None if data is None else codec.decode(cls, data, STATE_VALUE_SIZE_MAX)

    def put(self, key: str, value: object) -> None:
        self._writes[key] = codec.encode(value)

    def delete(self, key: str) -> None:
        self._writes[key] = None

    def merge(self, child: StateOverlay) -> None:
        """Take the writes of an overlay stacked on this one."""
        assert child._base is self, "merge only an overlay built on this one"
        self._writes.update(child._writes)

    def changes(self) -> dict[str, bytes | None]:
        return dict(sorted(self._writes.items()))
