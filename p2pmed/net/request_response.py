"""One request and one answer per stream: the pattern of ``/p2pmed/blob/2`` and ``/p2pmed/blocks/1``.

Each side writes one varint-framed message (``p2pmed.net.framing``); the asker then
resets the stream whatever happened. Every way of not getting an answer (no dial,
a reset, silence, a frame too big or cut short) is one ``NoAnswer`` with the reason.
"""

from __future__ import annotations

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from p2pmed.net.framing import FrameError, FrameReader, encode_frame

__all__ = ["NoAnswer", "ask", "reset"]


class NoAnswer(Exception):
    """The peer gave no usable answer; the message says why."""


async def ask(host: IHost, peer: ID, protocol: TProtocol, request: bytes, size_max: int, timeout_s: float) -> bytes:
    """Send ``request`` to ``peer`` on a new ``protocol`` stream and return the answer's bytes;
    neither may be bigger than ``size_max``."""
    if len(request) > size_max:
        raise ValueError(f"request of {len(request)} bytes, limit {size_max}")
    try:
        with trio.fail_after(timeout_s):
            stream = await host.new_stream(peer, [protocol])
            try:
                await stream.write(encode_frame(request, size_max))
                frame = await FrameReader(stream, size_max).read_frame()
            finally:
                await reset(stream)
    except trio.TooSlowError:
        raise NoAnswer(f"no answer within {timeout_s:g} s") from None
    except FrameError as error:
        raise NoAnswer(f"malformed answer: {error}") from None
    except Exception as error:  # cannot dial, stream reset...
        raise NoAnswer(f"unreachable: {error!r}") from None
    if frame is None:
        raise NoAnswer("the peer closed the stream without answering")
    return frame


async def reset(stream: INetStream) -> None:
    try:
        await stream.reset()
    except Exception:  # already gone
        pass
