"""One request and one answer per stream: the pattern of ``/p2pmed/blob/2`` and ``/p2pmed/blocks/1``,
both sides of it (``ask``; ``serve`` with a ``PeerGate``).

Each side writes one varint-framed message (``p2pmed.net.framing``); the asker then
resets the stream whatever happened. Every way of not getting an answer (no dial,
a reset, silence, a frame too big or cut short) is one ``NoAnswer`` with the reason.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import structlog
import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from p2pmed import codec
from p2pmed.net.framing import FrameError, FrameReader, encode_frame
from p2pmed.token_bucket import PeerBudgets

log = structlog.get_logger(__name__)

_Request = TypeVar("_Request")

__all__ = ["AnswerService", "NoAnswer", "PeerGate", "ask", "reset", "serve"]


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


async def serve(
    host: IHost, protocol: TProtocol, handler: Callable[[INetStream], Awaitable[None]], task_status: Any
) -> None:
    """Answer ``protocol`` with ``handler`` until cancelled."""
    host.set_stream_handler(protocol, handler)
    try:
        task_status.started()
        await trio.sleep_forever()
    finally:
        host.remove_stream_handler(protocol)


class PeerGate:
    """Which peers may open a stream, how many at once and how often: a stream over either limit
    is reset before anything is read."""

    def __init__(self, admitted: Callable[[ID], bool], requests_per_s: float, streams_per_peer_max: int) -> None:
        self.admitted, self.streams_per_peer_max = admitted, streams_per_peer_max
        self._requests: PeerBudgets[ID] = PeerBudgets(requests_per_s, max(1, int(2 * requests_per_s)))
        self._open: collections.Counter[ID] = collections.Counter()

    def refusal(self, peer: ID, now: float) -> str | None:
        """``"strangers"`` or ``"throttled"`` (the counter to raise) when ``peer`` may not go on now."""
        if not self.admitted(peer):
            return "strangers"
        if self._open[peer] >= self.streams_per_peer_max or self._requests.take(peer, now):
            return "throttled"
        return None

    @property
    def open_streams(self) -> int:
        return sum(self._open.values())

    @contextlib.contextmanager
    def open(self, peer: ID) -> Iterator[None]:
        self._open[peer] += 1
        try:
            yield
        finally:
            self._open[peer] -= 1


class AnswerService:
    """Serves one request and one answer per stream on ``protocol`` to admitted peers: each may
    have ``streams_per_peer_max`` requests open at once, ``requests_per_s`` (bursts of twice
    that) and, unless None, ``bytes_per_s`` of answers (bursts of two full answers; an answer is
    charged once sent, and the peer's next request waits until the budget is out of debt); a
    request over any is reset before it is read and counted as ``throttled``. ``answer`` turns
    the asking peer and its request's bytes (None: the stream closed before one) into the
    answer's, on the trio thread."""

    def __init__(
        self,
        host: IHost,
        protocol: TProtocol,
        answer: Callable[[ID, bytes | None], bytes],
        admitted: Callable[[ID], bool],
        *,
        request_size_max: int,
        answer_size_max: int,
        requests_per_s: float,
        bytes_per_s: float | None,
        streams_per_peer_max: int,
        timeout_s: float,
    ) -> None:
        self.host, self.protocol, self.answer = host, protocol, answer
        self.request_size_max, self.answer_size_max, self.timeout_s = request_size_max, answer_size_max, timeout_s
        self.served: collections.Counter[str] = collections.Counter()
        """Requests by outcome: malformed, strangers, throttled (``answer`` counts the rest)."""
        self.gate = PeerGate(admitted, requests_per_s, streams_per_peer_max)
        self._bytes: PeerBudgets[ID] | None = (
            None if bytes_per_s is None else PeerBudgets(bytes_per_s, 2 * answer_size_max)
        )

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await serve(self.host, self.protocol, self._handle, task_status)

    def request(self, cls: type[_Request], frame: bytes | None) -> _Request | str:
        """The request ``frame`` holds; else why it holds none (counted as malformed)."""
        try:
            if frame is None:
                raise codec.CodecError("request", "stream closed before a request")
            return codec.decode(cls, frame, self.request_size_max)
        except codec.CodecError as error:
            self.served["malformed"] += 1
            return f"malformed request: {error}"

    async def _handle(self, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id
        now = trio.current_time()
        refusal = self.gate.refusal(peer, now)
        if refusal is None and self._bytes is not None and self._bytes.take(peer, now):
            refusal = "throttled"
        if refusal is not None:
            self.served[refusal] += 1
            await reset(stream)
            return
        with self.gate.open(peer):
            await self._serve(peer, stream)

    async def _serve(self, peer: ID, stream: INetStream) -> None:
        try:
            with trio.fail_after(self.timeout_s):
                frame = await FrameReader(stream, self.request_size_max).read_frame()
                data = self.answer(peer, frame)
                assert len(data) <= self.answer_size_max, "answers are bounded by construction"
                await stream.write(encode_frame(data, self.answer_size_max))
                await stream.close()
            if self._bytes is not None:
                self._bytes.charge(peer, trio.current_time(), len(data))
        except (FrameError, trio.TooSlowError) as error:
            self.served["malformed"] += 1
            log.info("request dropped", protocol=self.protocol, peer=str(peer), error=str(error))
            await reset(stream)
        except Exception as error:  # the peer reset or vanished
            log.info("stream ended", protocol=self.protocol, peer=str(peer), error=repr(error))
            await reset(stream)
