"""The two per-connection bounds of the RPC server: a request rate and an output buffer."""

from __future__ import annotations

import collections

import trio

__all__ = ["Outbox", "TokenBucket"]

BATCH_BYTES_MAX = 256 * 1024
"""How much ``Outbox.take`` joins into one write: fewer system calls for many
small notifications, without copying a whole full buffer at once."""


class TokenBucket:
    """At most ``burst`` requests at once, refilled at ``rate`` per second.

    Pure: time comes in as ``now`` (seconds, any monotonic origin), so the same
    bucket works under trio's clock and in a test with made-up times.
    """

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._updated = now

    def take(self, now: float) -> float:
        """Take one token: ``0.0`` if there was one, else how many seconds until there is."""
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._updated) * self.rate)
        self._updated = max(self._updated, now)
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


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
