"""Blocks: a header that chains to its parent by hash, and the transactions it orders.

The block hash is the SHA-256 of the canonical header, and the header commits to
its transactions through ``tx_root``, the RFC 6962 Merkle tree hash of their ids
(leaves prefixed 0x00, inner nodes 0x01), so a single transaction can later be
proven to be in a block without the others. The commit certificate that proves
a block was decided signs the block hash, so it lives beside the block (the
store keeps it with the block), not inside it.

A header also commits to the outcome of an *earlier* block (``state``, a
``StateCommitment``): the root of the ledger state after executing block
``state.height`` (``p2pmed.ledger.state_tree``) and the Merkle root of that block's
transaction results. It cannot commit to its own block's outcome: blocks are
proposed and voted on before they execute. The proposer commits to the latest
block it has executed, normally the parent (``state.height == height - 1``); with
pipelining an older one, at most ``STATE_LAG_MAX`` blocks back. The commit
certificate signs the proposal digest, which covers ``state``, so 2f+1 validators
vouch for the root: that is what makes a state proof checkable by an outsider.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from p2pmed import codec
from p2pmed.crypto import PUBLIC_KEY_SIZE
from p2pmed.ledger.errors import BlockRejected, TxRejected
from p2pmed.ledger.tx import CHAIN_ID_LENGTH_MAX, Transaction

__all__ = [
    "EMPTY_GENESIS_STATE",
    "GENESIS_PARENT_HASH",
    "STATE_LAG_MAX",
    "Block",
    "BlockHeader",
    "StateCommitment",
    "check_block",
    "decode_block",
    "make_block",
    "merkle_root",
]

HASH_SIZE = 32
GENESIS_PARENT_HASH = bytes(HASH_SIZE)
BLOCK_TXS_MAX = 10_000
STATE_LAG_MAX = 64
"""A consensus rule: block h commits to the outcome of a block in [h - STATE_LAG_MAX, h - 1]
(a NEW-VIEW's empty filler blocks excepted: they commit to genesis, see the replica)."""


@dataclass(frozen=True)
class StateCommitment:
    """The outcome of block ``height`` (0: the genesis state, with no results)."""

    height: int
    state_root: bytes
    """The root of the state tree after executing block ``height``."""
    results_root: bytes
    """The Merkle root (``merkle_root``) of the SHA-256s of block ``height``'s encoded
    transaction results, in block order."""

    CODEC_CACHE = True

    def __post_init__(self) -> None:
        if self.height < 0:
            raise ValueError("state height must be >= 0")
        if len(self.state_root) != HASH_SIZE or len(self.results_root) != HASH_SIZE:
            raise ValueError(f"state_root and results_root must be {HASH_SIZE} bytes")


@dataclass(frozen=True)
class BlockHeader:
    chain_id: str
    height: int
    previous_hash: bytes
    tx_root: bytes
    tx_count: int
    proposer: bytes
    time_ms: int
    state: StateCommitment

    def __post_init__(self) -> None:
        if not 0 < len(self.chain_id) <= CHAIN_ID_LENGTH_MAX:
            raise ValueError(f"chain_id must be 1..{CHAIN_ID_LENGTH_MAX} characters")
        if self.height < 1:
            raise ValueError("height must be >= 1")
        if len(self.previous_hash) != HASH_SIZE or len(self.tx_root) != HASH_SIZE:
            raise ValueError(f"previous_hash and tx_root must be {HASH_SIZE} bytes")
        if not 0 <= self.tx_count <= BLOCK_TXS_MAX:
            raise ValueError(f"tx_count must be in 0..{BLOCK_TXS_MAX}")
        if len(self.proposer) != PUBLIC_KEY_SIZE:
            raise ValueError(f"proposer must be a {PUBLIC_KEY_SIZE}-byte public key")
        if self.time_ms < 0:
            raise ValueError("time_ms must be >= 0")
        if not self.state.height < self.height:
            raise ValueError("a header commits to the outcome of an earlier block")

    @functools.cached_property
    def hash(self) -> bytes:
        return hashlib.sha256(codec.encode(self)).digest()


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    txs: tuple[Transaction, ...]

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def hash(self) -> bytes:
        return self.header.hash


def _leaf_hash(tx_id: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + tx_id).digest()


def merkle_root(tx_ids: list[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash over the tx ids (SHA-256 of nothing for no txs)."""
    if not tx_ids:
        return hashlib.sha256(b"").digest()
    level = [_leaf_hash(tx_id) for tx_id in tx_ids]
    while len(level) > 1:
        # RFC 6962 splits at the largest power of two; pairing left to right and
        # promoting an odd last node gives the same tree.
        paired = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


EMPTY_GENESIS_STATE = StateCommitment(0, bytes(HASH_SIZE), merkle_root([]))
"""The commitment to a genesis with no state (the empty tree's root is 32 zero bytes)."""


def make_block(
    chain_id: str,
    height: int,
    previous_hash: bytes,
    txs: tuple[Transaction, ...],
    proposer: bytes,
    time_ms: int,
    state: StateCommitment = EMPTY_GENESIS_STATE,
) -> Block:
    root = merkle_root([tx.id for tx in txs])
    header = BlockHeader(chain_id, height, previous_hash, root, len(txs), proposer, time_ms, state)
    return Block(header, txs)


def check_block(block: Block, chain_id: str, height: int, previous_hash: bytes) -> None:
    """Check that ``block`` is well formed and extends the given head; raise ``BlockRejected``."""
    header = block.header
    if header.chain_id != chain_id:
        raise BlockRejected(f"block is for chain {header.chain_id!r}, this is {chain_id!r}")
    if header.height != height:
        raise BlockRejected(f"block height {header.height}, expected {height}")
    if header.previous_hash != previous_hash:
        raise BlockRejected(f"block at height {height} does not extend the current head")
    if header.tx_count != len(block.txs):
        raise BlockRejected(f"header says {header.tx_count} txs, block carries {len(block.txs)}")
    if header.tx_root != merkle_root([tx.id for tx in block.txs]):
        raise BlockRejected("tx_root does not match the block's transactions")
    if len({tx.id for tx in block.txs}) != len(block.txs):
        raise BlockRejected("block carries the same transaction twice")


def decode_block(data: bytes) -> Block:
    """Decode untrusted bytes into a block; raise ``BlockRejected``."""
    try:
        return codec.decode(Block, data, codec.BLOCK_SIZE_MAX)
    except codec.CodecError as error:
        raise BlockRejected(f"malformed block: {error}") from None
    except TxRejected as error:
        raise BlockRejected(f"malformed transaction in block: {error}") from None
