"""The deterministic state machine: checks transactions and executes blocks.

``check`` is stateless (chain, type, body shape, signature) and is what the
mempool runs on arrival. ``execute_block`` applies a decided block to a state:
for each transaction in order, the nonce must be exactly the sender's next one,
then the type's rule runs in its own overlay. A refused transaction stays in the
block with its reason (so every node records the same outcome) and changes
nothing, except that a transaction refused by its rule still uses up its nonce:
the sender signed it and it was ordered, so it must not be replayable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from p2pmed import codec
from p2pmed.ledger.block import Block, merkle_root
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader
from p2pmed.ledger.tx import Transaction

__all__ = [
    "LEDGER_TIME_KEY",
    "BlockExecution",
    "Ledger",
    "TxResult",
    "ledger_time_ms",
    "next_nonce",
    "results_root",
]

_NONCE_KEY = "nonce/"
LEDGER_TIME_KEY = "ledger/time_ms"


def ledger_time_ms(state: StateReader) -> int:
    """The ledger's clock: the latest block time it has executed (0 before the first block).

    It never goes back: a block dated before it executes at this time instead, so a
    primary that dates a block in the past cannot revive what has expired. (Backups
    also refuse to prepare proposals dated outside a bound of their own clocks.)"""
    data = state.state_get(LEDGER_TIME_KEY)
    return 0 if data is None else codec.decode(int, data, 16)


def next_nonce(state: StateReader, sender: bytes) -> int:
    """The nonce the ledger will accept next from ``sender``."""
    data = state.state_get(_NONCE_KEY + sender.hex())
    return 0 if data is None else codec.decode(int, data, 16)


@dataclass(frozen=True)
class TxResult:
    tx_id: bytes
    reason: RejectReason | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.reason is None


def results_root(results: Iterable[TxResult]) -> bytes:
    """What a later header commits to about a block's outcomes (``StateCommitment.results_root``):
    the Merkle root of the SHA-256s of the encoded results, refusals and their reasons included."""
    return merkle_root([hashlib.sha256(codec.encode(result)).digest() for result in results])


@dataclass(frozen=True)
class BlockExecution:
    results: tuple[TxResult, ...]
    changes: dict[str, bytes | None]
    time_ms: int
    """The ledger time the block executed at: its own time, or the ledger's if that is later."""


class Ledger:
    """The rules of one chain: its id, the transaction types it knows and the state it
    starts from (which holds the genesis validators: ``membership.genesis_state``)."""

    def __init__(
        self, chain_id: str, tx_types: Iterable[TxType], genesis_state: Mapping[str, bytes] | None = None
    ) -> None:
        self.chain_id = chain_id
        self.tx_types: Mapping[str, TxType] = {tx_type.name: tx_type for tx_type in tx_types}
        self.genesis_state: Mapping[str, bytes] = genesis_state or {}
        """The state at height 0, which a new store starts from."""

    def check(self, tx: Transaction) -> Any:
        """Stateless checks; returns the typed body or raises ``TxRejected``."""
        if tx.chain_id != self.chain_id:
            raise TxRejected(
                RejectReason.WRONG_CHAIN, f"transaction is for chain {tx.chain_id!r}, this is {self.chain_id!r}"
            )
        body = self._typed_body(tx)
        if not tx.signature_is_valid():
            raise TxRejected(RejectReason.BAD_SIGNATURE, "signature does not verify for sender")
        return body

    def _typed_body(self, tx: Transaction) -> Any:
        tx_type = self.tx_types.get(tx.type)
        if tx_type is None:
            raise TxRejected(RejectReason.UNKNOWN_TYPE, f"unknown transaction type {tx.type!r}")
        try:
            return codec.from_value(tx_type.body, tx.body, "body")
        except codec.CodecError as error:
            raise TxRejected(RejectReason.BAD_BODY, str(error)) from None

    def execute_block(
        self, state: StateReader, block: Block, verified_tx_ids: Container[bytes] = frozenset()
    ) -> BlockExecution:
        """Apply ``block``'s transactions in order; skip signature checks for ``verified_tx_ids``."""
        block_state = StateOverlay(state)
        previous_ms = ledger_time_ms(state)
        time_ms = max(block.header.time_ms, previous_ms)
        if time_ms != previous_ms:
            block_state.put(LEDGER_TIME_KEY, time_ms)
        epoch = membership.epoch_at(state, block.height)
        validators = () if epoch is None else epoch.keys
        results = tuple(self._execute(block_state, time_ms, validators, block, tx, verified_tx_ids) for tx in block.txs)
        return BlockExecution(results, block_state.changes(), time_ms)

    def _execute(
        self,
        block_state: StateOverlay,
        time_ms: int,
        validators: tuple[bytes, ...],
        block: Block,
        tx: Transaction,
        verified: Container[bytes],
    ) -> TxResult:
        try:
            body = self._typed_body(tx) if tx.id in verified and tx.chain_id == self.chain_id else self.check(tx)
            self._take_nonce(block_state, tx)
        except TxRejected as error:
            return TxResult(tx.id, error.reason, error.detail)
        tx_state = StateOverlay(block_state)
        context = TxContext(self.chain_id, block.height, time_ms, tx.sender, tx.id, validators)
        tx_type = self.tx_types[tx.type]
        try:
            tx_type.apply(tx_state, context, body)
        except TxRejected as error:
            if tx_type.refused is not None:
                refusal_state = StateOverlay(block_state)
                tx_type.refused(refusal_state, context, body, error)
                block_state.merge(refusal_state)
            return TxResult(tx.id, error.reason, error.detail)
        block_state.merge(tx_state)
        return TxResult(tx.id, None, "")

    @staticmethod
    def _take_nonce(state: StateOverlay, tx: Transaction) -> None:
        expected = next_nonce(state, tx.sender)
        if tx.nonce < expected:
            raise TxRejected(RejectReason.STALE_NONCE, f"nonce {tx.nonce} already used; next is {expected}")
        if tx.nonce > expected:
            raise TxRejected(RejectReason.FUTURE_NONCE, f"nonce {tx.nonce} is ahead; next is {expected}")
        state.put(_NONCE_KEY + tx.sender.hex(), expected + 1)
