"""``/p2pmed/blob/2``: custodians hand record ciphertexts and key shares to each other and to readers.

One request and one response per stream, each a varint-framed canonical CBOR
map (the framing of ``p2pmed.net.framing``)::

    BlobRequest  = {"kind": "put" / "copy" / "share" / "sealed", "record_id": bstr .size 32,
                    "sealed": bstr, "wraps": [* bstr], "read": SignedReadRequest / null}
    BlobResponse = {"error": tstr, "sealed": bstr, "wraps": [* bstr]}
    SignedReadRequest = {"request": {"record_id": bstr, "reader": bstr, "issued_ms": uint},
                         "signature": bstr}   ; Ed25519, domain "record-fetch"

- ``put`` hands a custodian the ciphertext and every custodian's sealed key share
  (in the anchor's order); the answer is empty.
- ``copy`` asks a fellow custodian for what it keeps (ciphertext and sealed
  shares), for a custodian that missed the upload; only that custodian's own
  node may ask.
- ``share`` and ``sealed`` carry a reader's signed, fresh read request and are
  answered with the custodian's key share sealed to that reader (one wrap), or
  with the ciphertext.

An empty ``error`` means success; otherwise it says why the custodian refused
(``p2pmed.node.custodian``). Only genesis validators may open the protocol; a
malformed request is answered with an error and the stream closed. The
custodian's checks read the local store, so they run on the node's trio thread,
like everything else that touches the store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from libp2p.abc import IHost
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID

from p2pmed import codec
from p2pmed.key_shares import SHARE_WRAP_SIZE_MAX
from p2pmed.ledger.contracts.records import CUSTODIANS_MAX, SIZE_MAX
from p2pmed.net.request_response import AnswerService, NoAnswer, ask

__all__ = [
    "PROTOCOL_ID",
    "BlobClient",
    "BlobRequest",
    "BlobResponse",
    "BlobService",
    "ReadRequest",
    "SealedShares",
    "SignedReadRequest",
    "refused",
]


PROTOCOL_ID = TProtocol("/p2pmed/blob/2")
SHARES_SIZE_MAX = CUSTODIANS_MAX * (SHARE_WRAP_SIZE_MAX + 8) + 64
"""The largest encoded ``SealedShares``."""
FRAME_SIZE_MAX = SIZE_MAX + SHARES_SIZE_MAX + 4096
REQUEST_TIMEOUT_S = 10.0
REQUEST_KINDS = ("put", "copy", "share", "sealed")


@dataclass(frozen=True)
class SealedShares:
    """Every custodian's key share of one record, each sealed to its custodian, in the anchor's order:
    what a writer hands each custodian (``record.store``'s ``shares``) and what a custodian keeps."""

    wraps: tuple[bytes, ...]


@dataclass(frozen=True)
class ReadRequest:
    """What a reader signs (``SignatureDomain.RECORD_FETCH``) to be served a record: it proves the
    reader asks, now; naming a reader is not enough."""

    record_id: bytes
    reader: bytes
    """The reader's current signing key."""
    issued_ms: int


@dataclass(frozen=True)
class SignedReadRequest:
    request: ReadRequest
    signature: bytes


@dataclass(frozen=True)
class BlobRequest:
    kind: str
    record_id: bytes
    sealed: bytes = b""
    wraps: tuple[bytes, ...] = ()
    read: SignedReadRequest | None = None


@dataclass(frozen=True)
class BlobResponse:
    error: str
    sealed: bytes = b""
    wraps: tuple[bytes, ...] = ()


def refused(reason: str) -> BlobResponse:
    return BlobResponse(reason)


class BlobService(AnswerService):
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
        super().__init__(
            host,
            PROTOCOL_ID,
            self._answer,
            validators,
            request_size_max=FRAME_SIZE_MAX,
            answer_size_max=FRAME_SIZE_MAX,
            requests_per_s=requests_per_s,
            bytes_per_s=None,
            streams_per_peer_max=streams_per_peer_max,
            timeout_s=REQUEST_TIMEOUT_S,
        )
        self.custodian = answer
        self.served.update(dict.fromkeys((*REQUEST_KINDS, "refused", "malformed", "strangers", "throttled"), 0))

    def _answer(self, peer: ID, frame: bytes | None) -> bytes:
        request = self.request(BlobRequest, frame)
        if isinstance(request, str):
            return codec.encode(refused(request))
        response = self.custodian(request, peer)
        if request.kind in REQUEST_KINDS:
            self.served["refused" if response.error else request.kind] += 1
        return codec.encode(response)


class BlobClient:
    """Asks other custodians, one stream per request."""

    def __init__(self, host: IHost) -> None:
        self.host = host

    async def request(self, peer: ID, request: BlobRequest) -> BlobResponse:
        """The custodian's answer; a failure to reach it is a ``BlobResponse`` with the error."""
        try:
            frame = await ask(self.host, peer, PROTOCOL_ID, codec.encode(request), FRAME_SIZE_MAX, REQUEST_TIMEOUT_S)
            return codec.decode(BlobResponse, frame, FRAME_SIZE_MAX)
        except NoAnswer as error:
            return refused(str(error))
        except codec.CodecError as error:
            return refused(f"malformed answer: {error}")
