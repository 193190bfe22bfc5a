"""Verifying committed blocks as a light client does: no votes of its own, only certificates.

A node outside the validator set (an observer, or a site voted in that has not reached its
epoch) trusts nothing a validator sends it except what a quorum signed. It takes a block
when it is the next height after its head, chains to the head's hash, is well formed
(chain id, transaction count and Merkle root), and carries a commit certificate of a quorum
of distinct validators of the block's epoch over its proposal digest
(``Validators.check_committed_block``). One Byzantine validator, or an outsider, can
therefore hand it nothing but delays: it cannot sign a quorum alone.

Which set certifies a height is read from the chain verified so far (``validators_at``):
the genesis set, then each set the validators voted in (``membership``), known from the
block that passed the change, ``EPOCH_DELAY_BLOCKS`` before the set takes over. So blocks
are checked one at a time, each against the state the blocks before it built.
"""

from __future__ import annotations

from p2pmed.consensus.certificates import InvalidMessage, Validators
from p2pmed.consensus.messages import BlockWithCertificate
from p2pmed.crypto import Verifier
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.state import StateReader

__all__ = ["check_next", "validators_at"]


def validators_at(state: StateReader, height: int, chain_id: str, verifier: Verifier) -> Validators:
    """The set that certifies ``height``, from a state executed up to a height below it (at most
    ``EPOCH_DELAY_BLOCKS`` below: later changes are not in it yet)."""
    epoch = membership.epoch_at(state, height)
    assert epoch is not None, "a chain that has blocks has validators from genesis"
    return Validators(chain_id, epoch.keys, verifier, None, epoch.number, epoch.first_height)


def check_next(validators: Validators, height: int, head_hash: bytes, item: BlockWithCertificate) -> None:
    """Refuse (``InvalidMessage``) ``item`` unless it is the block after the head (``height``,
    ``head_hash``) with a certificate of ``validators``, the set of its epoch."""
    if item.block.height != height + 1:
        raise InvalidMessage(f"block at height {item.block.height}, expected {height + 1}")
    validators.check_committed_block(item.block, item.certificate, head_hash)
