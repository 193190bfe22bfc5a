"""Checking a snapshot offer: where a node that starts from a recent state, instead of
replaying every block since genesis, learns which state that is and which validators vouch for it.

An offer names the state after block ``base`` (a snapshot height). It carries:

- ``epochs``: for each validator set after genesis, in order, a state proof of its
  record (``membership`` key ``validators/epoch/<n>``) certified by a block of the set
  before it. The record is written by the block that passes the change, at least
  ``EPOCH_DELAY_BLOCKS`` before the new set orders anything, so the old set certifies
  it. From the genesis set alone, a node so learns every later set, each vouched for by
  a quorum of the one before (``p2pmed.consensus.epoch_chain``);
- ``base`` with its commit certificate: the header of block ``base``, whose hash the next
  block must extend and whose time is the ledger's clock;
- ``anchor`` with its commit certificate: the proposal header of block ``base + 1``, which
  commits to the outcome of block ``base`` (the state root the snapshot's entries must hash to).

What a certificate does not cover, the base header's ``previous_hash`` (votes sign the
proposal header), a single peer could alter: the node would then hold a base no honest
validator's next block extends, and stall. So the node takes an offer only when f+1 peers
made the same one (``p2pmed.node.snapshots``): at least one of them is honest.

An offer could also leave out the newest epochs, so that an old set (its keys perhaps
stolen since) seems to certify the anchor. The state itself says which sets it knows
(``check_epochs_in_state``): once its entries hash to the certified root, every epoch it
records must be one the offer proved.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmed.consensus.certificates import InvalidMessage
from p2pmed.consensus.epoch_chain import EpochChainRefused, adopt_epochs, set_at
from p2pmed.consensus.messages import CommitCertificate, ProposalHeader, header_digest, proposal_header
from p2pmed.consensus.state_proof import StateProof
from p2pmed.crypto import Verifier
from p2pmed.ledger.block import BlockHeader, StateCommitment
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.state import StateReader

__all__ = [
    "EPOCHS_OFFERED_MAX",
    "OfferRefused",
    "SnapshotOffer",
    "VerifiedOffer",
    "check_epochs_in_state",
    "verify_offer",
]

EPOCHS_OFFERED_MAX = 1_000
"""Epoch proofs one offer carries (a few KiB each); a chain with more needs paging first."""


class OfferRefused(Exception):
    """An offer that does not check out; the message names what failed."""


@dataclass(frozen=True)
class SnapshotOffer:
    epochs: tuple[StateProof, ...]
    base: BlockHeader
    base_certificate: CommitCertificate
    anchor: ProposalHeader
    anchor_certificate: CommitCertificate

    def __post_init__(self) -> None:
        if len(self.epochs) > EPOCHS_OFFERED_MAX:
            raise ValueError(f"at most {EPOCHS_OFFERED_MAX} epoch proofs")


@dataclass(frozen=True)
class VerifiedOffer:
    base: BlockHeader
    state: StateCommitment
    """The outcome of block ``base`` that a quorum certified: the root the entries must hash to."""
    epochs: tuple[membership.Epoch, ...]
    """Every set from genesis on, each proved by the one before."""
    epoch_proofs: tuple[StateProof, ...]
    anchor_digest: bytes
    """The digest a quorum signed for the block after ``base``."""


def verify_offer(offer: SnapshotOffer, genesis: membership.Epoch, chain_id: str, verifier: Verifier) -> VerifiedOffer:
    """Check ``offer`` from nothing but the genesis set; raise ``OfferRefused``."""
    try:
        sets, adopted = adopt_epochs(offer.epochs, genesis.keys, chain_id, verifier)
    except EpochChainRefused as error:
        raise OfferRefused(str(error)) from None
    epochs = (genesis, *adopted)
    base, anchor = offer.base, offer.anchor
    if base.chain_id != chain_id:
        raise OfferRefused(f"the base block is of chain {base.chain_id!r}, not {chain_id!r}")
    if anchor.height != base.height + 1 or anchor.state.height != base.height:
        raise OfferRefused(
            f"the anchor is block {anchor.height} committing to the state after block {anchor.state.height};"
            f" expected block {base.height + 1} committing to the state after block {base.height}"
        )
    for header, certificate in ((proposal_header(base), offer.base_certificate), (anchor, offer.anchor_certificate)):
        validators = set_at(sets, header.height).validators(chain_id, verifier)
        try:
            validators.check_commit_certificate(certificate, header.height, header_digest(header))
        except InvalidMessage as error:
            raise OfferRefused(
                f"block {header.height}: {error.reason} (not certified by epoch {validators.epoch}'s set)"
            ) from None
    return VerifiedOffer(base, anchor.state, epochs, offer.epochs, header_digest(anchor))


def check_epochs_in_state(state: StateReader, epochs: tuple[membership.Epoch, ...]) -> None:
    """Refuse a state that records an epoch the offer did not prove, or another set for one it did."""
    latest = membership.latest_epoch(state)
    if latest is None or latest.number >= len(epochs):
        known = "none" if latest is None else f"epoch {latest.number}"
        raise OfferRefused(f"the state records {known}; the offer proved epochs up to {len(epochs) - 1}")
    for number in range(latest.number + 1):
        if membership.epoch_record(state, number) != epochs[number]:
            raise OfferRefused(f"the state's set of epoch {number} is not the one the offer proved")
