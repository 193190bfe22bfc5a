"""Verifying committed blocks as a light client does: no votes of its own, only certificates.

An observer trusts nothing a validator sends it except what 2f+1 validators signed. A
block is taken when it is the next height after the observer's head, chains to the head's
hash, is well formed (chain id, transaction count and Merkle root), and carries a commit
certificate of a quorum of distinct validators' signatures over its proposal digest
(``Validators.check_committed_block``). One Byzantine validator, or an outsider, can
therefore hand an observer nothing but delays: it cannot sign a quorum alone.

Which validators certify a block is asked per height (``ValidatorSets``). Today the set is
the genesis set at every height (``genesis_sets``); when validator changes by vote land,
the set of a height's epoch is read from the already verified chain below it, and the
check here stays the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from p2pmed.consensus.certificates import InvalidMessage, Validators
from p2pmed.consensus.messages import BlockWithCertificate

__all__ = ["ValidatorSets", "genesis_sets", "verified_prefix"]

ValidatorSets = Callable[[int], Validators]
"""The validator set whose quorum certifies the block at a height."""


def genesis_sets(validators: Validators) -> ValidatorSets:
    """The genesis set at every height (no membership changes yet)."""
    return lambda _height: validators


def verified_prefix(
    validator_sets: ValidatorSets, height: int, head_hash: bytes, answer: Iterable[BlockWithCertificate]
) -> tuple[list[BlockWithCertificate], InvalidMessage | None]:
    """The blocks of ``answer`` that extend the head (``height``, ``head_hash``) one by one,
    each certified; and why the first one that does not was refused (None if all were taken).
    A peer answers from the height it was asked for, so a block at any other height is refused."""
    taken: list[BlockWithCertificate] = []
    for item in answer:
        expected = height + len(taken) + 1
        if item.block.height != expected:
            return taken, InvalidMessage(f"block at height {item.block.height}, expected {expected}")
        previous_hash = taken[-1].block.hash if taken else head_hash
        try:
            validator_sets(expected).check_committed_block(item.block, item.certificate, previous_hash)
        except InvalidMessage as error:
            return taken, error
        taken.append(item)
    return taken, None
