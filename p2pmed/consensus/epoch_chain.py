"""The validator sets from genesis on, each believed on the word of a quorum of the set before it.

Epoch n's set is the state record ``validators/epoch/<n>`` (``membership``), written by
the block that passed the change, ``EPOCH_DELAY_BLOCKS`` before the set orders anything.
A proof of that record certified by a block of epoch n - 1 (``p2pmed.node.epoch_proofs``
keeps one for every change) is what lets someone holding nothing but genesis.json adopt
the sets one by one: an auditor checking a report bundle (``report_bundle``), a node
starting from a snapshot (``snapshot_offer``).
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmed import codec
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.state_proof import ProofRefused, StateProof, verify_state_proof
from p2pmed.crypto import Verifier
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.state import STATE_VALUE_SIZE_MAX

__all__ = ["EpochChainRefused", "EpochSet", "adopt_epochs", "set_at"]


class EpochChainRefused(Exception):
    """A proof in the chain of sets that does not check out; the message names it."""


@dataclass(frozen=True)
class EpochSet:
    number: int
    first_height: int
    keys: tuple[bytes, ...]

    @classmethod
    def of(cls, epoch: membership.Epoch) -> EpochSet:
        return cls(epoch.number, epoch.first_height, epoch.keys)

    def validators(self, chain_id: str, verifier: Verifier) -> Validators:
        return Validators(chain_id, self.keys, verifier, None, self.number, self.first_height)


def adopt_epochs(
    proofs: tuple[StateProof, ...], genesis_keys: tuple[bytes, ...], chain_id: str, verifier: Verifier
) -> tuple[tuple[EpochSet, ...], tuple[membership.Epoch, ...]]:
    """Genesis's set, then each later one on the word of a quorum of the set before it: the
    sets (genesis first), and the records adopted after genesis; raise ``EpochChainRefused``."""
    sets, adopted = [EpochSet(0, 1, genesis_keys)], []
    for index, proof in enumerate(proofs):
        where, number, previous = f"epochs[{index}]", index + 1, sets[-1]
        if proof.key != membership.epoch_key(number) or proof.value is None:
            raise EpochChainRefused(f"{where}: proves {proof.key!r}, not the record of epoch {number}")
        try:
            epoch = codec.decode(membership.Epoch, proof.value, STATE_VALUE_SIZE_MAX)
        except (codec.CodecError, ValueError) as error:
            raise EpochChainRefused(f"{where}: malformed: {error}") from None
        if epoch.number != number or epoch.first_height <= previous.first_height:
            raise EpochChainRefused(f"{where}: the record is not of epoch {number} after epoch {previous.number}")
        if not epoch.keys or len(set(epoch.keys)) != len(epoch.keys):
            raise EpochChainRefused(f"{where}: epoch {number}'s set is empty or lists a key twice")
        if proof.header.height >= epoch.first_height:
            raise EpochChainRefused(f"{where}: certified by block {proof.header.height}, not one of epoch {index}")
        try:
            verify_state_proof(proof, previous.validators(chain_id, verifier))
        except ProofRefused as error:
            raise EpochChainRefused(f"{where} (epoch {number}'s set, certified by epoch {index}'s): {error}") from None
        sets.append(EpochSet.of(epoch))
        adopted.append(epoch)
    return tuple(sets), tuple(adopted)


def set_at(sets: tuple[EpochSet, ...], height: int) -> EpochSet:
    """The set that orders ``height``, of ``sets`` (genesis first, in order)."""
    return [epoch for epoch in sets if epoch.first_height <= height][-1]
