"""PBFT messages: frozen dataclasses, canonical CBOR on the wire, each signed by its replica.

Ordering is decoupled from chaining. PBFT orders *proposals* (a height, a time,
a proposer and a batch of transactions) at sequence numbers, one sequence number
per block height; the block's ``previous_hash`` is then derived by every replica
from the block it committed before. Votes sign the *proposal digest*, the hash of
the block header without ``previous_hash``, so a re-proposal after a view change
keeps its digest, and a commit certificate (2f+1 commit votes for one view,
sequence and digest) proves a block was decided to anyone holding the validator
keys: recompute the digest from the block header and check the votes.

On the wire every message is an ``Envelope(kind, body)``; ``decode_message``
turns untrusted bytes into a typed message or raises ``CodecError``. Signatures
are checked by the replica, which knows the validator set.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from p2pmed import codec
from p2pmed.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, SignatureDomain
from p2pmed.ledger.block import EMPTY_GENESIS_STATE, HASH_SIZE, Block, BlockHeader, StateCommitment, merkle_root
from p2pmed.ledger.tx import Transaction

__all__ = [
    "BlockWithCertificate",
    "Blocks",
    "Checkpoint",
    "CommitCertificate",
    "Envelope",
    "FetchBlocks",
    "FetchProposal",
    "Forward",
    "Message",
    "MessageKind",
    "NewView",
    "PrePrepare",
    "PreparedCertificate",
    "Proposal",
    "ProposalHeader",
    "ViewChange",
    "Vote",
    "VoteKind",
    "blocks_answer",
    "decode_message",
    "encode_message",
    "header_digest",
    "message_kind",
    "proposal_digest",
    "proposal_header",
    "signing_payload",
    "with_signature",
]

PROPOSAL_TXS_MAX = 10_000
PROPOSAL_BYTES_MAX = 4 << 20
"""A consensus rule: the transactions of one proposal take at most this many bytes (their
canonical encodings). A pre-prepare or a block is then a quarter of the 16 MiB frame, so
the answers and view changes that carry several stay under it by construction; a primary
proposes at most its configured ``block_bytes_max``, which may be lower, never higher."""
FORWARD_TXS_MAX = 32
FORWARD_BYTES_MAX = 1 << 20
"""A forward carries at most this many transactions and bytes of them (always at least the
first, which ``codec.TX_SIZE_MAX`` keeps under it)."""
assert codec.TX_SIZE_MAX <= FORWARD_BYTES_MAX, "every transaction must fit a forward"
FETCH_BLOCKS_MAX = 64
FETCH_BYTES_MAX = 8 << 20
"""A block-fetch answer carries blocks while their encodings total at most this (and always
the first one, which ``PROPOSAL_BYTES_MAX`` keeps under it); the asker asks again for more."""


@dataclass(frozen=True)
class ProposalHeader:
    """The hashed part of a proposal: a block header without ``previous_hash``."""

    height: int
    time_ms: int
    proposer: bytes
    tx_root: bytes
    tx_count: int
    state: StateCommitment

    CODEC_CACHE = True

    def __post_init__(self) -> None:
        if self.height < 1 or self.time_ms < 0 or self.tx_count < 0:
            raise ValueError("height must be >= 1, time_ms and tx_count >= 0")
        if not self.state.height < self.height:
            raise ValueError("a proposal commits to the outcome of an earlier block")
        if len(self.proposer) != PUBLIC_KEY_SIZE:
            raise ValueError(f"proposer must be a {PUBLIC_KEY_SIZE}-byte public key")
        _check_digest_shape(self.tx_root)

    @property
    def empty(self) -> bool:
        return self.tx_count == 0 and self.tx_root == EMPTY_TX_ROOT


EMPTY_TX_ROOT = merkle_root([])


def header_digest(header: ProposalHeader) -> bytes:
    """The digest votes sign: what a proposal is, without its transactions' bytes."""
    return hashlib.sha256(codec.encode(header)).digest()


def proposal_header(header: BlockHeader) -> ProposalHeader:
    """The part of a block header that votes sign (all of it but ``chain_id``, which the
    signatures bind, and ``previous_hash``)."""
    return ProposalHeader(header.height, header.time_ms, header.proposer, header.tx_root, header.tx_count, header.state)


def proposal_digest(header: BlockHeader) -> bytes:
    """The digest votes sign for the block with this header."""
    return header_digest(proposal_header(header))


@dataclass(frozen=True, eq=False)
class Proposal:
    height: int
    time_ms: int
    proposer: bytes
    txs: tuple[Transaction, ...]
    state: StateCommitment = EMPTY_GENESIS_STATE
    """The outcome of an earlier block this one commits to (``p2pmed.ledger.block``)."""

    CODEC_CACHE = True

    def __post_init__(self) -> None:
        if self.height < 1 or self.time_ms < 0:
            raise ValueError("height must be >= 1 and time_ms >= 0")
        if not self.state.height < self.height:
            raise ValueError("a proposal commits to the outcome of an earlier block")
        if len(self.proposer) != PUBLIC_KEY_SIZE:
            raise ValueError(f"proposer must be a {PUBLIC_KEY_SIZE}-byte public key")
        if len(self.txs) > PROPOSAL_TXS_MAX:
            raise ValueError(f"at most {PROPOSAL_TXS_MAX} transactions per proposal")
        if self.tx_bytes > PROPOSAL_BYTES_MAX:
            raise ValueError(f"{self.tx_bytes} bytes of transactions; a proposal carries at most {PROPOSAL_BYTES_MAX}")

    @functools.cached_property
    def tx_bytes(self) -> int:
        return sum(len(tx.encoded) for tx in self.txs)

    @functools.cached_property
    def tx_root(self) -> bytes:
        return merkle_root([tx.id for tx in self.txs])

    @functools.cached_property
    def header(self) -> ProposalHeader:
        return ProposalHeader(self.height, self.time_ms, self.proposer, self.tx_root, len(self.txs), self.state)

    @functools.cached_property
    def digest(self) -> bytes:
        return header_digest(self.header)

    def block_header(self, chain_id: str, previous_hash: bytes) -> BlockHeader:
        return BlockHeader(
            chain_id, self.height, previous_hash, self.tx_root, len(self.txs), self.proposer, self.time_ms, self.state
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Proposal) and self.digest == other.digest and self.txs == other.txs

    def __hash__(self) -> int:
        return hash(self.digest)


class VoteKind(enum.StrEnum):
    PRE_PREPARE = "pre-prepare"
    PREPARE = "prepare"
    COMMIT = "commit"


_VOTE_DOMAINS = {
    VoteKind.PRE_PREPARE: SignatureDomain.PRE_PREPARE,
    VoteKind.PREPARE: SignatureDomain.PREPARE,
    VoteKind.COMMIT: SignatureDomain.COMMIT,
}


def _check_signature_shape(signature: bytes) -> None:
    if len(signature) != SIGNATURE_SIZE:
        raise ValueError(f"signature must be {SIGNATURE_SIZE} bytes")


def _check_digest_shape(digest: bytes) -> None:
    if len(digest) != HASH_SIZE:
        raise ValueError(f"digest must be {HASH_SIZE} bytes")


@dataclass(frozen=True)
class Vote:
    """A replica's signed pre-prepare, prepare or commit for (view, sequence, digest)."""

    kind: VoteKind
    view: int
    sequence: int
    digest: bytes
    replica: int
    signature: bytes

    CODEC_CACHE = True

    def __post_init__(self) -> None:
        if self.view < 0 or self.sequence < 1 or self.replica < 0:
            raise ValueError("view and replica must be >= 0, sequence >= 1")
        _check_digest_shape(self.digest)
        _check_signature_shape(self.signature)

    @property
    def domain(self) -> SignatureDomain:
        return _VOTE_DOMAINS[self.kind]


@dataclass(frozen=True)
class PrePrepare:
    """The primary's proposal for a sequence number in its view."""

    vote: Vote
    proposal: Proposal


@dataclass(frozen=True)
class Checkpoint:
    """A replica's signed claim that the block at ``sequence`` has hash ``block_hash``."""

    sequence: int
    block_hash: bytes
    replica: int
    signature: bytes

    CODEC_CACHE = True

    def __post_init__(self) -> None:
        if self.sequence < 0 or self.replica < 0:
            raise ValueError("sequence and replica must be >= 0")
        _check_digest_shape(self.block_hash)
        _check_signature_shape(self.signature)

    domain = SignatureDomain.CHECKPOINT


@dataclass(frozen=True)
class PreparedCertificate:
    """Proof that a proposal prepared: the pre-prepare and 2f matching prepares. It carries
    the proposal's header, not its transactions, so a view change with one per sequence
    stays small."""

    pre_prepare: Vote
    prepares: tuple[Vote, ...]
    header: ProposalHeader


@dataclass(frozen=True)
class CommitCertificate:
    """Proof that a proposal was decided: 2f+1 matching commit votes from distinct replicas."""

    commits: tuple[Vote, ...]

    def __post_init__(self) -> None:
        if not self.commits:
            raise ValueError("a commit certificate needs commit votes")


@dataclass(frozen=True)
class ViewChange:
    new_view: int
    stable_sequence: int
    checkpoint_proof: tuple[Checkpoint, ...]
    prepared: tuple[PreparedCertificate, ...]
    replica: int
    signature: bytes

    def __post_init__(self) -> None:
        if self.new_view < 1 or self.stable_sequence < 0 or self.replica < 0:
            raise ValueError("new_view must be >= 1, stable_sequence and replica >= 0")
        _check_signature_shape(self.signature)

    domain = SignatureDomain.VIEW_CHANGE


@dataclass(frozen=True)
class NewView:
    """The new primary's pre-prepare votes for every sequence from the highest stable
    checkpoint to the highest prepared one, each with the header it votes for: a selected
    proposal's (its transactions follow as PRE-PREPARE frames, or are fetched) or an empty one's."""

    view: int
    view_changes: tuple[ViewChange, ...]
    pre_prepares: tuple[Vote, ...]
    headers: tuple[ProposalHeader, ...]
    replica: int
    signature: bytes

    def __post_init__(self) -> None:
        if self.view < 1 or self.replica < 0:
            raise ValueError("view must be >= 1 and replica >= 0")
        if len(self.pre_prepares) != len(self.headers):
            raise ValueError("a new-view needs one header per pre-prepare")
        _check_signature_shape(self.signature)

    domain = SignatureDomain.NEW_VIEW


@dataclass(frozen=True)
class FetchBlocks:
    """A lagging replica asks for committed blocks from ``from_height`` on."""

    from_height: int
    replica: int

    def __post_init__(self) -> None:
        if self.from_height < 1 or self.replica < 0:
            raise ValueError("from_height must be >= 1 and replica >= 0")


@dataclass(frozen=True)
class FetchProposal:
    """A replica that voted for a digest without holding its transactions (a NEW-VIEW named
    it) asks a peer for them; the answer is the ``Proposal``, authenticated by its digest."""

    sequence: int
    digest: bytes
    replica: int

    def __post_init__(self) -> None:
        if self.sequence < 1 or self.replica < 0:
            raise ValueError("sequence must be >= 1 and replica >= 0")
        _check_digest_shape(self.digest)


@dataclass(frozen=True)
class Forward:
    """A backup hands the primary the transactions it has waited on longest, as a PBFT backup
    relays a client's request to the primary: gossip is best effort, and a primary that never
    received a transaction must get it before it is suspected of leaving it out. The
    transport authenticates the sender; each transaction carries its own signature."""

    txs: tuple[Transaction, ...]
    replica: int

    def __post_init__(self) -> None:
        if not 1 <= len(self.txs) <= FORWARD_TXS_MAX or self.replica < 0:
            raise ValueError(f"a forward carries 1..{FORWARD_TXS_MAX} transactions; replica >= 0")
        size = sum(len(tx.encoded) for tx in self.txs)
        if len(self.txs) > 1 and size > FORWARD_BYTES_MAX:
            raise ValueError(f"{size} bytes of transactions; a forward carries at most {FORWARD_BYTES_MAX}")


@dataclass(frozen=True)
class BlockWithCertificate:
    block: Block
    certificate: CommitCertificate


@dataclass(frozen=True)
class Blocks:
    """Committed blocks in height order, each with its commit certificate; ``more`` when the
    answer was cut short by ``FETCH_BLOCKS_MAX`` or ``FETCH_BYTES_MAX`` (ask again)."""

    blocks: tuple[BlockWithCertificate, ...]
    more: bool

    def __post_init__(self) -> None:
        if len(self.blocks) > FETCH_BLOCKS_MAX:
            raise ValueError(f"at most {FETCH_BLOCKS_MAX} blocks per response")


def blocks_answer(available: Iterable[BlockWithCertificate]) -> Blocks:
    """The answer to a block fetch: the first of ``available`` (read lazily) while the
    answer holds at most ``FETCH_BLOCKS_MAX`` blocks of at most ``FETCH_BYTES_MAX`` bytes;
    always the first block, which ``PROPOSAL_BYTES_MAX`` keeps under that."""
    chosen: list[BlockWithCertificate] = []
    size = 0
    for item in available:
        item_size = len(codec.encode(item))
        if chosen and (len(chosen) == FETCH_BLOCKS_MAX or size + item_size > FETCH_BYTES_MAX):
            return Blocks(tuple(chosen), more=True)
        chosen.append(item)
        size += item_size
    return Blocks(tuple(chosen), more=False)


Message = (
    PrePrepare | Vote | Checkpoint | ViewChange | NewView | FetchBlocks | Blocks | FetchProposal | Proposal | Forward
)


class MessageKind(enum.StrEnum):
    PRE_PREPARE = "pre-prepare"
    VOTE = "vote"
    CHECKPOINT = "checkpoint"
    VIEW_CHANGE = "view-change"
    NEW_VIEW = "new-view"
    FETCH_BLOCKS = "fetch-blocks"
    BLOCKS = "blocks"
    FETCH_PROPOSAL = "fetch-proposal"
    PROPOSAL = "proposal"
    FORWARD = "forward"


_MESSAGE_TYPES: dict[MessageKind, type] = {
    MessageKind.PRE_PREPARE: PrePrepare,
    MessageKind.VOTE: Vote,
    MessageKind.CHECKPOINT: Checkpoint,
    MessageKind.VIEW_CHANGE: ViewChange,
    MessageKind.NEW_VIEW: NewView,
    MessageKind.FETCH_BLOCKS: FetchBlocks,
    MessageKind.BLOCKS: Blocks,
    MessageKind.FETCH_PROPOSAL: FetchProposal,
    MessageKind.PROPOSAL: Proposal,
    MessageKind.FORWARD: Forward,
}
_KINDS = {message_type: kind for kind, message_type in _MESSAGE_TYPES.items()}


@dataclass(frozen=True)
class Envelope:
    kind: MessageKind
    body: Any


def encode_message(message: Message) -> bytes:
    return codec.encode(Envelope(_KINDS[type(message)], message))


def message_kind(message: Message) -> str:
    """A short name for counting messages: the envelope kind, or a vote's own kind
    ("prepare", "commit"), since votes are most of the traffic."""
    if isinstance(message, Vote):
        return message.kind.value
    return _KINDS[type(message)].value


def decode_message(data: bytes) -> Message:
    """Decode untrusted bytes into a typed message; raises ``CodecError``."""
    envelope = codec.decode(Envelope, data, codec.MESSAGE_SIZE_MAX)
    message: Message = codec.from_value(_MESSAGE_TYPES[envelope.kind], envelope.body, f"{envelope.kind.value}")
    return message


def signing_payload(message: Vote | Checkpoint | ViewChange | NewView) -> bytes:
    """What a message's signature covers: its canonical encoding without the signature.

    Kept on the (frozen) message, since every receiver of a shared message object
    and every certificate that carries it needs the same bytes again.
    """
    cached = message.__dict__.get("_signing_payload")
    if cached is None:
        cached = message.__dict__["_signing_payload"] = codec.encode_omitting(message, "signature")
    return cached


SignedT = TypeVar("SignedT", Vote, Checkpoint, ViewChange, NewView)


def with_signature(message: SignedT, signature: bytes) -> SignedT:
    """``message`` (built with a placeholder signature) with ``signature``; it signs the same
    payload, so the signed copy keeps the one already encoded for signing."""
    signed = dataclasses.replace(message, signature=signature)
    payload = message.__dict__.get("_signing_payload")
    if payload is not None:
        signed.__dict__["_signing_payload"] = payload
    return signed
