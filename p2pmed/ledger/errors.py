"""Why a transaction or block was refused; one reason code per kind of fault."""

from __future__ import annotations

import enum

__all__ = ["BlockRejected", "RejectReason", "TxRejected"]


class RejectReason(enum.StrEnum):
    MALFORMED = "malformed"
    TOO_BIG = "too-big"
    WRONG_CHAIN = "wrong-chain"
    UNKNOWN_TYPE = "unknown-type"
    BAD_BODY = "bad-body"
    BAD_SIGNATURE = "bad-signature"
    STALE_NONCE = "stale-nonce"
    FUTURE_NONCE = "future-nonce"
    NOT_AUTHORISED = "not-authorised"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    NONCE_PENDING = "nonce-pending"
    MEMPOOL_FULL = "mempool-full"
    UNKNOWN_SENDER = "unknown-sender"


class TxRejected(Exception):
    """A transaction that must not be applied; ``reason`` is the machine-readable code."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class BlockRejected(Exception):
    """A block that does not extend the chain or is not well formed."""
