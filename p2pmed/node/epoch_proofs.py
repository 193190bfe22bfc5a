"""Keeping, for every validator set change, a proof that the set before it voted it in.

An auditor with nothing but genesis.json checks a report offline (``p2pmed report
verify``) by adopting the validator sets one epoch at a time: epoch n's set (the state
record ``validators/epoch/<n>``) is believed only if a block certified by epoch n - 1's
set commits to a state that holds it. Such a proof can be made only in a short window:
the record is written at block ``a`` (its epoch starts at ``a + EPOCH_DELAY_BLOCKS``),
the old set certifies blocks up to ``a + EPOCH_DELAY_BLOCKS - 1``, and the store keeps
the tree of a past state for ``STATE_HISTORY_BLOCKS`` only. So the node makes the proof
when it commits the first block of the old epoch that commits to a state holding the
record, and keeps it in its store for good (``Store.keep_epoch_proof``). A node that
syncs the chain later commits the same blocks and keeps the same kind of proof.
"""

from __future__ import annotations

from p2pmed import codec
from p2pmed.consensus.messages import CommitCertificate, proposal_header
from p2pmed.consensus.state_proof import StateProof
from p2pmed.ledger.block import Block
from p2pmed.ledger.contracts import membership
from p2pmed.store import Store

__all__ = ["keep_epoch_proof_if_due"]


def keep_epoch_proof_if_due(store: Store, block: Block) -> None:
    """After ``block`` (the head, with its certificate) is stored: if it is a block of the old
    epoch that commits to a state holding a passed, not yet kept change, keep its proof."""
    latest = membership.latest_epoch(store)
    if latest is None or latest.number == 0 or block.height >= latest.first_height:
        return
    if store.epoch_proof(latest.number) is not None:
        return
    passed_at = latest.first_height - membership.EPOCH_DELAY_BLOCKS
    if block.header.state.height < passed_at:
        return  # this block certifies a state from before the change passed
    certificate = store.certificate(block.height)
    assert certificate is not None, "a committed block is stored with its certificate"
    key = membership.epoch_key(latest.number)
    value, path = store.state_path(key, block.header.state.height)
    assert value is not None, "the state after the block that passed a change holds its epoch"
    proof = StateProof(
        key,
        value,
        path,
        proposal_header(block.header),
        codec.decode(CommitCertificate, certificate, codec.BLOCK_SIZE_MAX),
    )
    store.keep_epoch_proof(latest.number, codec.encode(proof))
