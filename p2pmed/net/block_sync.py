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

from collections.abc import Callable
from dataclasses import dataclass

from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from p2pmed import codec
from p2pmed.consensus.messages import FETCH_BLOCKS_MAX, FETCH_BYTES_MAX, BlockWithCertificate
from p2pmed.net.request_response import AnswerService, NoAnswer, ask

__all__ = ["PROTOCOL_ID", "BlockSyncClient", "BlockSyncService", "SyncAnswer", "SyncRequest", "sync_error"]

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


class BlockSyncService(AnswerService):
    """Serves ``PROTOCOL_ID``: ``blocks(from_height)`` reads the blocks from the store."""

    def __init__(
        self,
        host: IHost,
        blocks: Callable[[int], SyncAnswer],
        admitted: Callable[[ID], bool],
        *,
        requests_per_s: float = 50.0,
        bytes_per_s: float = 32 << 20,
        streams_per_peer_max: int = 2,
    ) -> None:
        super().__init__(
            host,
            PROTOCOL_ID,
            self._answer,
            admitted,
            request_size_max=REQUEST_SIZE_MAX,
            answer_size_max=ANSWER_SIZE_MAX,
            requests_per_s=requests_per_s,
            bytes_per_s=bytes_per_s,
            streams_per_peer_max=streams_per_peer_max,
            timeout_s=REQUEST_TIMEOUT_S,
        )
        self.blocks = blocks

    def _answer(self, _peer: ID, frame: bytes | None) -> bytes:
        request = self.request(SyncRequest, frame)
        if isinstance(request, str):
            return codec.encode(sync_error(request))
        answer = self.blocks(request.from_height)
        self.served["answered"] += 1
        self.served["blocks"] += len(answer.blocks)
        return codec.encode(answer)


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
