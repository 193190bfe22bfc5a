"""The RPC server's per-connection output buffer (its request rate is a ``p2pmed.token_bucket``)."""

from __future__ import annotations

import collections

import trio

__all__ = ["Outbox"]

BATCH_BYTES_MAX = 256 * 1024
"""How much ``Outbox.take`` joins into one write: fewer system calls for many
small notifications, without copying a whole full buffer at once."""


class Outbox:
    """Lines waiting to go to one client, in order, bounded in bytes.

    ``size`` counts every byte accepted and not yet confirmed written by
    ``sent``, including those the writer is busy sending, so the bound covers
    all output memory of the connection. One line is always accepted into an
    empty outbox, however big, so a large reply is not a reason to drop anyone.

    Two ways in: ``put`` waits for room (replies, so a client that pipelines
    requests faster than it reads replies is slowed down, not dropped), and
    ``put_nowait`` reports that there is none (subscription items, which must not
    hold up their source: the caller drops the client instead).
    """

    def __init__(self, bytes_max: int) -> None:
        if bytes_max < 1:
            raise ValueError("bytes_max must be positive")
        self.bytes_max = bytes_max
        self.size = 0
        self._lines: collections.deque[bytes] = collections.deque()
        self._changed = trio.Event()

    def put_nowait(self, line: bytes) -> bool:
        if self.size and self.size + len(line) > self.bytes_max:
            return False
        self._lines.append(line)
        self.size += len(line)
        self._wake()
        return True

    async def put(self, line: bytes) -> None:
        while not self.put_nowait(line):
            await self._changed.wait()

    async def take(self) -> bytes:
        """The oldest lines, up to ``BATCH_BYTES_MAX`` (or one line), as one chunk to
        write; once written, call ``sent`` with its length."""
        while not self._lines:
            await self._changed.wait()
        batch = [self._lines.popleft()]
        size = len(batch[0])
        while self._lines and size + len(self._lines[0]) <= BATCH_BYTES_MAX:
            batch.append(self._lines.popleft())
            size += len(batch[-1])
        return b"".join(batch) if len(batch) > 1 else batch[0]

    def sent(self, size: int) -> None:
        assert 0 < size <= self.size, (size, self.size)
        self.size -= size
        self._wake()

    async def wait_empty(self) -> None:
        while self.size:
            await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()
