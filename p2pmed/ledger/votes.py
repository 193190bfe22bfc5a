"""Decisions the validators take by a 2f+1 vote: each validator sends the same transaction,
and the decision is taken in the block that orders the quorum-th identical vote."""

from __future__ import annotations

from collections.abc import Callable

from p2pmed import codec
from p2pmed.ledger.state import StateOverlay
from p2pmed.quorum import quorum_size

__all__ = ["quorum_agrees"]


def quorum_agrees(
    state: StateOverlay, validators: tuple[bytes, ...], sender: bytes, key_of: Callable[[bytes], str], vote: object
) -> bool:
    """Record ``sender``'s ``vote`` under ``key_of(sender)`` (a newer vote replaces its older one);
    True once a quorum of ``validators`` voted the same, and then every vote on it is cleared."""
    state.put(key_of(sender), vote)
    cast = codec.encode(vote)
    if sum(1 for validator in validators if state.state_get(key_of(validator)) == cast) < quorum_size(len(validators)):
        return False
    for validator in validators:
        state.delete(key_of(validator))
    return True
