"""``/p2pmed/snapshot/1``: a node offers a recent state of the ledger, and hands it out in
chunks, to a node that starts from it instead of replaying every block (``p2pmed.node.snapshots``).

One request and one answer per stream, each a varint-framed canonical CBOR map::

    SnapshotRequest = {"height": uint, "after": tstr}
    SnapshotAnswer  = {"error": tstr, "offer": SnapshotOffer / null,
                       "entries": [* {"key": tstr, "value": bstr}], "more": bool}

``height`` 0 asks for the offer (``p2pmed.consensus.snapshot_offer.SnapshotOffer``: the
snapshot height, the certificates that vouch for it and the proofs of every validator
set since genesis); any other height asks for the state after that block, in key order,
from the first key after ``after``: ``CHUNK_BYTES_MAX`` of entries (at least one), and
``more`` when the state goes on. An empty ``error`` means success. The asker verifies
everything: the offer against the genesis set, the entries against the certified state
root once it has them all. Who may ask, how often and for how many bytes is the serving
node's decision, as for block sync (``p2pmed.net.request_response.AnswerService``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from p2pmed import codec
from p2pmed.consensus.snapshot_offer import SnapshotOffer
from p2pmed.net.request_response import AnswerService, NoAnswer, ask

__all__ = [
    "CHUNK_BYTES_MAX",
    "PROTOCOL_ID",
    "SnapshotAnswer",
    "SnapshotClient",
    "SnapshotRequest",
    "SnapshotService",
    "StateEntry",
]

PROTOCOL_ID = TProtocol("/p2pmed/snapshot/1")
REQUEST_SIZE_MAX = 1_200
"""A state key is at most 1 KiB (``p2pmed.node.api.proofs``), plus the map around it."""
CHUNK_BYTES_MAX = 4 << 20
ANSWER_SIZE_MAX = 8 << 20
"""A chunk's entries (one value may pass ``CHUNK_BYTES_MAX``: values are at most 1 MiB), or an offer."""
REQUEST_TIMEOUT_S = 20.0
KEY_LENGTH_MAX = 1_024


@dataclass(frozen=True)
class SnapshotRequest:
    height: int
    after: str = ""

    def __post_init__(self) -> None:
        if self.height < 0 or len(self.after) > KEY_LENGTH_MAX:
            raise ValueError(f"height must be >= 0 and after at most {KEY_LENGTH_MAX} characters")


@dataclass(frozen=True)
class StateEntry:
    key: str
    value: bytes


@dataclass(frozen=True)
class SnapshotAnswer:
    error: str
    offer: SnapshotOffer | None = None
    entries: tuple[StateEntry, ...] = ()
    more: bool = False


class SnapshotService(AnswerService):
    """Serves ``PROTOCOL_ID``: ``offer()`` and ``entries(height, after)`` read the store."""

    def __init__(
        self,
        host: IHost,
        offer: Callable[[], SnapshotAnswer],
        entries: Callable[[int, str], SnapshotAnswer],
        admitted: Callable[[ID], bool],
        *,
        requests_per_s: float = 20.0,
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
        self.offer, self.entries = offer, entries

    def _answer(self, _peer: ID, frame: bytes | None) -> bytes:
        request = self.request(SnapshotRequest, frame)
        if isinstance(request, str):
            return codec.encode(SnapshotAnswer(request))
        if request.height == 0:
            self.served["offers"] += 1
            return codec.encode(self.offer())
        answer = self.entries(request.height, request.after)
        self.served["chunks"] += 1
        return codec.encode(answer)


class SnapshotClient:
    """Asks a node for its snapshot offer or a chunk of the state, one stream per request."""

    def __init__(self, host: IHost, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.host, self.timeout_s = host, timeout_s

    async def request(self, peer: ID, height: int, after: str = "") -> SnapshotAnswer:
        """The peer's answer, decoded but not verified; a failure to get one is an answer with the error."""
        request = codec.encode(SnapshotRequest(height, after))
        try:
            frame = await ask(self.host, peer, PROTOCOL_ID, request, ANSWER_SIZE_MAX, self.timeout_s)
            return codec.decode(SnapshotAnswer, frame, ANSWER_SIZE_MAX)
        except NoAnswer as error:
            return SnapshotAnswer(str(error))
        except (codec.CodecError, ValueError) as error:
            return SnapshotAnswer(f"malformed answer: {error}")
