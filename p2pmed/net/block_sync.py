"""``/p2pmed/blocks/1``: validators hand their committed blocks, with commit certificates, to
observers.

One request and one answer per stream, each a varint-framed canonical CBOR map (the
framing of ``p2pmed.net.framing``)::

    SyncRequest = {"from_height": uint}                      ; >= 1
    SyncAnswer  = {"error": tstr, "head": uint, "blocks": [* BlockWithCertificate],
                   "more": bool}
    BlockWithCertificate = {"block": Block, "certificate": {"commits": [+ Vote]}}

``blocks`` are the validator's committed blocks from ``from_height`` on, in height order:
at most ``FETCH_BLOCKS_MAX`` (64) of them and ``FETCH_BYTES_MAX`` (8 MiB) in all, the
first always included; ``more`` says the answer was cut short (ask again from the next
height). ``head`` is the validator's height, an unproven claim that the asker may use
only to decide when to ask. ``Block`` and ``Vote`` are ``p2pmed.ledger.block.Block`` and
``p2pmed.consensus.messages.Vote``; the asker verifies everything
(``p2pmed.consensus.light_client``). An empty ``error`` means success.

The protocol is separate from the validators' ``/p2pmed/pbft/1``, which resets the streams
of anyone outside the validator set. Who may open it is the serving node's decision
(``admitted``: in the daemon, whoever may publish transactions there). Each peer may have
``streams_per_peer_max`` requests open at once, ``requests_per_s`` (bursts of twice that)
and ``bytes_per_s`` of answers (bursts of two full answers; an answer is charged once sent,
and the peer's next request waits until the budget is out of debt); a request over any is
reset before it is read and counted as ``throttled``. Answers are read from the store on the
node's trio thread, like everything else that touches it.
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
from p2pmed.consensus.messages import FETCH_BLOCKS_MAX, FETCH_BYTES_MAX, BlockWithCertificate
from p2pmed.net.framing import FrameError, FrameReader, encode_frame
from p2pmed.net.request_response import NoAnswer, PeerGate, ask, reset, serve
from p2pmed.token_bucket import PeerBudgets

__all__ = ["PROTOCOL_ID", "BlockSyncClient", "BlockSyncService", "SyncAnswer", "SyncRequest", "sync_error"]

log = structlog.get_logger(__name__)

PROTOCOL_ID = TProtocol("/p2pmed/blocks/1")
REQUEST_SIZE_MAX = 64
ANSWER_SIZE_MAX = FETCH_BYTES_MAX + (64 << 10)
"""An answer's blocks are at most ``FETCH_BYTES_MAX``, measured as encoded; the rest is its map."""
REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class SyncRequest:
    from_height: int

    def __post_init__(self) -> None:
        if self.from_height < 1:
            raise ValueError("from_height must be >= 1")


@dataclass(frozen=True)
class SyncAnswer:
    error: str
    head: int = 0
    blocks: tuple[BlockWithCertificate, ...] = ()
    more: bool = False

    def __post_init__(self) -> None:
        if len(self.blocks) > FETCH_BLOCKS_MAX:
            raise ValueError(f"at most {FETCH_BLOCKS_MAX} blocks per answer")
        if self.head < 0:
            raise ValueError("head must be >= 0")


def sync_error(reason: str) -> SyncAnswer:
    return SyncAnswer(reason)


class BlockSyncService:
    """Serves ``PROTOCOL_ID``: ``answer(from_height)`` reads the blocks from the store."""

    def __init__(
        self,
        host: IHost,
        answer: Callable[[int], SyncAnswer],
        admitted: Callable[[ID], bool],
        *,
        requests_per_s: float = 50.0,
        bytes_per_s: float = 32 << 20,
        streams_per_peer_max: int = 2,
    ) -> None:
        self.host, self.answer = host, answer
        self.served: collections.Counter[str] = collections.Counter()
        """Requests by outcome: answered, blocks (sent), malformed, strangers, throttled."""
        self.gate = PeerGate(admitted, requests_per_s, streams_per_peer_max)
        self._bytes: PeerBudgets[ID] = PeerBudgets(bytes_per_s, 2 * ANSWER_SIZE_MAX)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await serve(self.host, PROTOCOL_ID, self._handle, task_status)

    async def _handle(self, stream: INetStream) -> None:
        peer = stream.muxed_conn.peer_id
        now = trio.current_time()
        refusal = self.gate.refusal(peer, now)
        # Answers are charged in bytes once sent: a peer whose last ones overdrew its budget waits here.
        if refusal is None and self._bytes.take(peer, now):
            refusal = "throttled"
        if refusal is not None:
            self.served[refusal] += 1
            await reset(stream)
            return
        with self.gate.open(peer):
            await self._serve(peer, stream)

    async def _serve(self, peer: ID, stream: INetStream) -> None:
        try:
            with trio.fail_after(REQUEST_TIMEOUT_S):
                frame = await FrameReader(stream, REQUEST_SIZE_MAX).read_frame()
                data = codec.encode(self._answer(frame))
                if len(data) > ANSWER_SIZE_MAX:  # a bug: answers are bounded by construction
                    log.error("block sync answer over its limit", bytes=len(data))
                    data = codec.encode(sync_error("internal error: answer too large"))
                await stream.write(encode_frame(data, ANSWER_SIZE_MAX))
                await stream.close()
            self._bytes.charge(peer, trio.current_time(), len(data))
        except (FrameError, trio.TooSlowError) as error:
            self.served["malformed"] += 1
            log.info("block sync request dropped", peer=str(peer), error=str(error))
            await reset(stream)
        except Exception as error:  # the peer reset or vanished
            log.info("block sync stream ended", peer=str(peer), error=repr(error))
            await reset(stream)

    def _answer(self, frame: bytes | None) -> SyncAnswer:
        try:
            if frame is None:
                raise codec.CodecError("request", "stream closed before a request")
            request = codec.decode(SyncRequest, frame, REQUEST_SIZE_MAX)
        except codec.CodecError as error:
            self.served["malformed"] += 1
            return sync_error(f"malformed request: {error}")
        answer = self.answer(request.from_height)
        self.served["answered"] += 1
        self.served["blocks"] += len(answer.blocks)
        return answer


class BlockSyncClient:
    """Asks a validator for blocks, one stream per request."""

    def __init__(self, host: IHost, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.host = host
        self.timeout_s = timeout_s

    async def request(self, peer: ID, from_height: int) -> SyncAnswer:
        """The validator's answer, decoded but not verified; a failure to get one is an
        answer with the error."""
        request = codec.encode(SyncRequest(from_height))
        try:
            frame = await ask(self.host, peer, PROTOCOL_ID, request, ANSWER_SIZE_MAX, self.timeout_s)
            return codec.decode(SyncAnswer, frame, ANSWER_SIZE_MAX)
        except NoAnswer as error:
            return sync_error(str(error))
        except codec.CodecError as error:
            return sync_error(f"malformed answer: {error}")
