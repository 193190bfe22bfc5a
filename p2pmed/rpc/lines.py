"""Reading ``\\n``-terminated lines from a trio stream without unbounded buffering."""

from __future__ import annotations

import trio

__all__ = ["LineReader", "LineTooLong"]

READ_CHUNK = 64 * 1024


class LineTooLong(Exception):
    """A line longer than the reader's ``line_size_max`` (its ``\\n`` not counted)."""


class LineReader:
    """``read_line`` returns the next line without its ``\\n``, or ``None`` at end of input.

    The buffer never holds more than ``line_size_max + 1`` bytes: each read asks
    only for what could still complete a line of the maximum size, so a client
    sending 10 MiB without a newline costs us one line's worth of memory before
    ``LineTooLong`` is raised, and the rest is never read. A last line that ends
    at end of input without ``\\n`` is returned like any other; after it, ``None``.
    """

    def __init__(self, stream: trio.abc.ReceiveStream, line_size_max: int) -> None:
        if line_size_max < 1:
            raise ValueError("line_size_max must be positive")
        self.line_size_max = line_size_max
        self._stream = stream
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no "\n"

    async def read_line(self) -> bytes | None:
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0:
                if end > self.line_size_max:
                    raise LineTooLong(f"line longer than {self.line_size_max} bytes")
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._scanned = 0
                return line
            if len(self._buffer) > self.line_size_max:
                raise LineTooLong(f"line longer than {self.line_size_max} bytes")
            self._scanned = len(self._buffer)
            chunk = await self._stream.receive_some(min(READ_CHUNK, self.line_size_max + 1 - len(self._buffer)))
            if not chunk:
                rest = bytes(self._buffer) if self._buffer else None
                self._buffer.clear()
                self._scanned = 0
                return rest
            self._buffer += chunk
