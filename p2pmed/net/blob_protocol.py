"""``/p2pmed/blob/1``: custodians hand record ciphertexts to each other and to readers' sites.

One request and one response per stream, each a varint-framed canonical CBOR
map (the framing of ``p2pmed.net.framing``)::

    BlobRequest  = {"kind": "put" / "get", "record_id": bstr .size 32,
                    "reader": bstr, "sealed": bstr, "wrap": bstr}
    BlobResponse = {"error": tstr, "sealed": bstr, "wrap": bstr}

``put`` carries a ciphertext and the data key wrapped to the receiving
custodian (``reader`` empty); ``get`` names the reader's signing key (``sealed``
and ``wrap`` empty) and is answered with the ciphertext and the key wrapped to
that reader. An empty ``error`` means success; otherwise it says why the
custodian refused (``p2pmed.node.custodian``). Only genesis validators may open the
protocol; a malformed request is answered with an error and the stream closed.
The custodian's checks read the local store, so they run on the node's trio
thread, like everything else that touches the store.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from p2pmed import codec
from p2pmed.ledger.contracts.records import SIZE_MAX
from p2pmed.net.framing import FrameError, FrameReader, encode_frame
from p2pmed.token_bucket import PeerBudgets

__all__ = ["PROTOCOL_ID", "BlobClient", "BlobRequest", "BlobResponse", "BlobService", "refused"]

log = structlog.get_logger(__name__)

PROTOCOL_ID = TProtocol("/p2pmed/blob/1")
FRAME_SIZE_MAX = 2 * SIZE_MAX + 4096
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class BlobRequest:
    kind: str
    record_id: bytes
    reader: bytes
    sealed: bytes
    wrap: bytes


@dataclass(frozen=True)
class BlobResponse:
    error: str
    sealed: bytes
    wrap: bytes


def refused(reason: str) -> BlobResponse:
    return BlobResponse(reason, b"", b"")


class BlobService:
    """Serves ``PROTOCOL_ID``: ``answer`` is this node's custodian deciding each request.

    Each validator may have ``streams_per_peer_max`` requests open at once and make
    ``requests_per_s`` (bursts of twice that); a request over either is reset before
    anything is read, and counted as ``throttled``."""

    def __init__(
        self,
        host: IHost,
        answer: Callable[[BlobRequest, ID], BlobResponse],
        validators: Callable[[ID], bool],
        *,
        requests_per_s: float = 100.0,
        streams_per_peer_max: int = 4,
    ) -> None:
        self.host, self.answer, self.is_validator = host, answer, validators
        self.streams_per_peer_max = streams_per_peer_max
        self.served: dict[str, int] = dict.fromkeys(("put", "get", "refused", "malformed", "strangers", "throttled"), 0)
        self._budgets: PeerBudgets[ID] = PeerBudgets(requests_per_s, max(1, int(2 * requests_per_s)))
        self._open: collections.Counter[ID] = collections.Counter()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.host.set_stream_handler(PROTOCOL_ID, self._handle)
        try:
            task_status.started()
            await trio.sleep_forever()
        finally:
            self.host.remove_stream_handler(PROTOCOL_ID)

    async def _handle(self, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id
        if not self.is_validator(peer):
            self.served["strangers"] += 1
            await _reset(stream)
            return
        if self._open[peer] >= self.streams_per_peer_max or self._budgets.take(peer, trio.current_time()):
            self.served["throttled"] += 1
            await _reset(stream)
            return
        self._open[peer] += 1
        try:
            await self._serve(peer, stream)
        finally:
            self._open[peer] -= 1

    async def _serve(self, peer: ID, stream: INetStream) -> None:
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                frame = await FrameReader(stream, FRAME_SIZE_MAX).read_frame()
                response = self._answer(peer, frame)
                await stream.write(encode_frame(codec.encode(response), FRAME_SIZE_MAX))
                await stream.close()
        except (FrameError, trio.TooSlowError) as error:
            self.served["malformed"] += 1
            log.info("blob request dropped", peer=str(peer), error=str(error))
            await _reset(stream)
        except Exception as error:  # the peer reset or vanished
            log.info("blob stream ended", peer=str(peer), error=repr(error))
            await _reset(stream)

    def _answer(self, peer: ID, frame: bytes | None) -> BlobResponse:
        try:
            if frame is None:
                raise codec.CodecError("request", "stream closed before a request")
            request = codec.decode(BlobRequest, frame, FRAME_SIZE_MAX)
        except codec.CodecError as error:
            self.served["malformed"] += 1
            return refused(f"malformed request: {error}")
        response = self.answer(request, peer)
        if request.kind in ("put", "get"):
            self.served["refused" if response.error else request.kind] += 1
        return response


class BlobClient:
    """Asks other custodians, one stream per request."""

    def __init__(self, host: IHost) -> None:
        self.host = host

    async def request(self, peer: ID, request: BlobRequest) -> BlobResponse:
        """The custodian's answer; a failure to reach it is a ``BlobResponse`` with the error."""
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                stream = await self.host.new_stream(peer, [PROTOCOL_ID])
                try:
                    await stream.write(encode_frame(codec.encode(request), FRAME_SIZE_MAX))
                    frame = await FrameReader(stream, FRAME_SIZE_MAX).read_frame()
                finally:
                    await _reset(stream)
            if frame is None:
                return refused("the custodian closed the stream without answering")
            return codec.decode(BlobResponse, frame, FRAME_SIZE_MAX)
        except trio.TooSlowError:
            return refused(f"no answer within {REQUEST_TIMEOUT_S:g} s")
        except (codec.CodecError, FrameError) as error:
            return refused(f"malformed answer: {error}")
        except Exception as error:  # cannot dial, stream reset...
            return refused(f"unreachable: {error!r}")


async def _reset(stream: INetStream) -> None:
    try:
        await stream.reset()
    except Exception:  # already gone
        pass
