"""The largest VIEW-CHANGE and NEW-VIEW a validator set and watermark window allow.

They are built, not estimated: every integer at the 64-bit maximum (CBOR's longest),
every certificate as full as ``Validators.check_view_change`` admits, then encoded.
A replica refuses to start with a configuration whose largest new-view would not fit
one frame, so no honest replica ever builds a message its peers cannot receive.
"""

from __future__ import annotations

import functools

from p2pmed import codec
from p2pmed.consensus.messages import (
    Checkpoint,
    NewView,
    PreparedCertificate,
    ProposalHeader,
    ViewChange,
    Vote,
    VoteKind,
    encode_message,
)
from p2pmed.crypto import PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from p2pmed.ledger.block import HASH_SIZE, StateCommitment

__all__ = ["largest_new_view", "largest_view_change", "new_view_fits"]

_INT_MAX = (1 << 64) - 1
_HASH = b"\xff" * HASH_SIZE
_SIGNATURE = b"\xff" * SIGNATURE_SIZE


def _vote(kind: VoteKind) -> Vote:
    return Vote(kind, _INT_MAX, _INT_MAX, _HASH, _INT_MAX, _SIGNATURE)


_HEADER = ProposalHeader(
    _INT_MAX, _INT_MAX, b"\xff" * PUBLIC_KEY_SIZE, _HASH, _INT_MAX, StateCommitment(_INT_MAX - 1, _HASH, _HASH)
)


def largest_view_change(quorum: int, window: int) -> ViewChange:
    """A view change with a quorum's checkpoint proof and a full prepared certificate for
    every sequence of the window."""
    certificate = PreparedCertificate(
        _vote(VoteKind.PRE_PREPARE), tuple(_vote(VoteKind.PREPARE) for _ in range(quorum - 1)), _HEADER
    )
    proof = tuple(Checkpoint(_INT_MAX, _HASH, _INT_MAX, _SIGNATURE) for _ in range(quorum))
    return ViewChange(_INT_MAX, _INT_MAX, proof, (certificate,) * window, _INT_MAX, _SIGNATURE)


def largest_new_view(quorum: int, window: int) -> NewView:
    """A new-view with a quorum of the largest view changes and a header for every sequence."""
    view_changes = (largest_view_change(quorum, window),) * quorum
    pre_prepares = (_vote(VoteKind.PRE_PREPARE),) * window
    return NewView(_INT_MAX, view_changes, pre_prepares, (_HEADER,) * window, _INT_MAX, _SIGNATURE)


@functools.cache
def new_view_fits(quorum: int, window: int) -> bool:
    """Whether every new-view (and so every view change) this configuration can produce fits a frame.
    Cached: each replica built asks (a node at start twice, the simulator at every restart)."""
    vote_bytes = len(codec.encode(_vote(VoteKind.PREPARE)))
    if quorum * window * quorum * vote_bytes > codec.MESSAGE_SIZE_MAX:  # surely too big: do not build it
        return False
    return len(encode_message(largest_new_view(quorum, window))) <= codec.MESSAGE_SIZE_MAX
