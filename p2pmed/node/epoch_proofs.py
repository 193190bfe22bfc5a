"""Keeping, for every validator set change, a proof that the set before it voted it in.

An auditor with nothing but genesis.json checks a report offline (``p2pmed report
verify``), and a node that starts from a snapshot checks the snapshot's offer
(``p2pmed.node.fast_start``), by adopting the validator sets one epoch at a time: epoch n's set (the state
record ``validators/epoch/<n>``) is believed only if a block certified by epoch n - 1's
set commits to a state that holds it. Such a proof can be made only in a short window:
the record is written at block ``a`` (its epoch starts at ``a + EPOCH_DELAY_BLOCKS``),
the old set certifies blocks up to ``a + EPOCH_DELAY_BLOCKS - 1``, and the store keeps
the tree of a past state for ``STATE_HISTORY_BLOCKS`` only. So the node makes the proof
when it commits the first block of the old epoch that commits to a state holding the
record, and keeps it in its store for good (``Store.put_epoch_proof``). A node that
syncs the chain later commits the same blocks and keeps the same kind of proof.
"""

from __future__ import annotations

import structlog

from p2pmed import codec
from p2pmed.ledger.contracts import membership
from p2pmed.node.state_proofs import ProofUnavailable, state_proof
from p2pmed.store import Store

__all__ = ["keep_epoch_proof"]

log = structlog.get_logger(__name__)


def keep_epoch_proof(store: Store) -> None:
    """After a block: prove and keep the newest epoch's set, while the old set still certifies blocks."""
    latest = membership.latest_epoch(store)
    if latest is None or latest.number == 0 or store.epoch_proof(latest.number) is not None:
        return
    if store.head()[0] >= latest.first_height:  # the old set certifies nothing any more: too late
        return
    try:
        proof = state_proof(store, membership.epoch_key(latest.number), None)
    except ProofUnavailable:
        return
    if proof.value is not None:  # else the head does not commit to the passing block's state yet
        store.put_epoch_proof(latest.number, codec.encode(proof))
        log.info("epoch proof kept", epoch=latest.number, certified_by=proof.header.height)
