"""Length-prefixed frames on a byte stream.

Wire format: each frame is an unsigned LEB128 varint (the multiformats
``unsigned-varint``, as every length-delimited libp2p protocol uses) giving the
body length in bytes, followed by exactly that many body bytes. A varint was
chosen over a fixed 4-byte length because it is the libp2p convention, so a peer
written with another libp2p implementation can speak ``/p2pmed/pbft/1`` with its
stock length-delimited reader (Go ``msgio/pbio``-style varint framing, JS
``it-length-prefixed``), and it costs one or two bytes for small votes.

Rules, enforced by both the encoder and the reader:

- the length must be at most ``size_max`` (``codec.MESSAGE_SIZE_MAX`` by default);
  the reader checks it as soon as the length is known, before reading or
  buffering any of the body, so a peer cannot make us allocate more than that;
- the varint must be minimal (no redundant ``0x80``-continued zero bytes), so
  each frame has exactly one encoding;
- a zero-length frame is valid at this layer (body ``b""``); whether an empty
  body means anything is for the layer above (``decode_message`` rejects it);
- end of input between frames is a clean end (``read_frame`` returns ``None``);
  end of input inside a header or body is a ``FrameError`` (truncated).

``FrameReader`` works on anything with ``async read(n) -> bytes`` that returns
1..n bytes, and signals end of input by returning ``b""`` or raising
``EOFError`` (libp2p's ``StreamEOF`` is an ``EOFError``). Other exceptions from
``read`` (a reset stream, a closed connection) propagate unchanged.
"""

from __future__ import annotations

from typing import Protocol

from p2pmed.codec import MESSAGE_SIZE_MAX

__all__ = ["FrameError", "FrameReader", "Reader", "decode_varint", "encode_frame", "encode_varint"]

READ_CHUNK = 64 * 1024
"""How much ``FrameReader`` asks the stream for at once (it buffers the rest)."""


class FrameError(ValueError):
    """A frame that is oversized, truncated or has a malformed length prefix."""


class Reader(Protocol):
    async def read(self, n: int) -> bytes: ...


def encode_varint(value: int) -> bytes:
    """The minimal unsigned LEB128 encoding of ``value``."""
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes | bytearray, start: int = 0, size_max: int = MESSAGE_SIZE_MAX) -> tuple[int, int] | None:
    """Parse a frame length at ``data[start:]``: ``(length, header_size)``.

    Returns ``None`` when ``data`` ends inside the varint (more bytes needed).
    Raises ``FrameError`` as soon as the length is known to exceed ``size_max``
    (even before the varint is complete), when the varint is longer than any
    length up to ``size_max`` needs, or when it is not minimal.
    """
    header_size_max = max(1, -(-size_max.bit_length() // 7))
    value = 0
    shift = 0
    for position in range(len(data) - start):
        byte = data[start + position]
        value |= (byte & 0x7F) << shift
        if value > size_max:
            raise FrameError(f"frame too big: length prefix exceeds {size_max} bytes")
        if not byte & 0x80:
            if byte == 0 and position > 0:
                raise FrameError("non-minimal varint length prefix")
            return value, position + 1
        if position + 1 >= header_size_max:
            raise FrameError(f"length prefix longer than {header_size_max} bytes")
        shift += 7
    return None


def encode_frame(body: bytes, size_max: int = MESSAGE_SIZE_MAX) -> bytes:
    """``body`` with its length prefix; ``FrameError`` if it is bigger than ``size_max``."""
    if len(body) > size_max:
        raise FrameError(f"frame too big: {len(body)} bytes, limit {size_max}")
    return encode_varint(len(body)) + body


class FrameReader:
    """Reads frames one at a time from a stream, buffering what it over-reads.

    After a ``FrameError`` the stream is out of step and must be abandoned.
    """

    __slots__ = ("_buffer", "_position", "_reader", "size_max")

    def __init__(self, reader: Reader, size_max: int = MESSAGE_SIZE_MAX) -> None:
        self._reader = reader
        self.size_max = size_max
        self._buffer = bytearray()
        self._position = 0  # start of unconsumed bytes in _buffer

    async def read_frame(self) -> bytes | None:
        """The next frame's body, or ``None`` at a clean end of input."""
        while True:
            header = decode_varint(self._buffer, self._position, self.size_max)
            if header is not None:
                break
            if not await self._fill(READ_CHUNK):
                if self._position == len(self._buffer):
                    return None
                raise FrameError("truncated frame: input ended inside the length prefix")
        length, header_size = header
        self._position += header_size
        while len(self._buffer) - self._position < length:
            missing = length - (len(self._buffer) - self._position)
            if not await self._fill(max(READ_CHUNK, missing)):
                raise FrameError(f"truncated frame: input ended {missing} bytes short of a {length}-byte body")
        body = bytes(self._buffer[self._position : self._position + length])
        self._position += length
        return body

    async def _fill(self, n: int) -> bool:
        """Append up to ``n`` more bytes to the buffer; False at end of input."""
        if self._position:
            del self._buffer[: self._position]
            self._position = 0
        try:
            data = await self._reader.read(n)
        except EOFError:
            return False
        if not data:
            return False
        self._buffer += data
        return True
