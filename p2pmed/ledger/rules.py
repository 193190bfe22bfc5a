"""What a transaction type is: a typed body and a deterministic rule that applies it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from p2pmed.ledger.errors import TxRejected
from p2pmed.ledger.state import StateOverlay

__all__ = ["TxContext", "TxType"]


@dataclass(frozen=True)
class TxContext:
    """Everything a rule may depend on besides state: the same on every node."""

    chain_id: str
    height: int
    time_ms: int
    sender: bytes
    tx_id: bytes
    validators: tuple[bytes, ...] = ()
    """The keys of the validator set that orders this block (``membership.epoch_at``): they
    govern which organisations take part."""


@dataclass(frozen=True)
class TxType:
    """``apply`` reads and writes ``state`` or raises ``TxRejected``; no I/O, no clock."""

    name: str
    body: type
    apply: Callable[[StateOverlay, TxContext, Any], None]
    refused: Callable[[StateOverlay, TxContext, Any, TxRejected], None] | None = None
    """What a refusal by ``apply`` leaves on the ledger (an audit entry), written in place
    of the refused rule's changes; it must not raise."""
