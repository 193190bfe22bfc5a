"""Checking signed messages and the certificates built from them.

Everything here is pure and raises ``InvalidMessage`` when a peer's message or
certificate does not hold up: a bad signature, a vote from a replica outside the
validator set, too few distinct voters, votes that do not match each other, a
proposal whose digest is not the one voted for. The replica treats that as "a
peer sent garbage": it drops the message, counts it and carries on.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

from p2pmed import quorum
from p2pmed.consensus.messages import (
    Checkpoint,
    CommitCertificate,
    NewView,
    PreparedCertificate,
    PrePrepare,
    ProposalHeader,
    ViewChange,
    Vote,
    VoteKind,
    header_digest,
    proposal_digest,
    signing_payload,
)
from p2pmed.crypto import Verifier
from p2pmed.ledger.block import Block, check_block
from p2pmed.ledger.errors import BlockRejected

__all__ = ["InvalidMessage", "Validators"]


class InvalidMessage(Exception):
    """A message or certificate from a peer that fails verification; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Validators:
    """The validator set of one epoch and the rules for counting its votes.

    Epoch ``epoch`` orders the blocks from ``first_height`` on (epoch 0, the genesis set,
    from height 1; ``p2pmed.ledger.contracts.membership`` decides the others). Every vote
    is signed for its epoch (``signing_context``), so no message of one epoch counts in
    another, even where the two sets share keys. The epoch starts from the block before
    its first height as its genesis checkpoint, which needs no proof: the blocks up to it
    were certified by the sets before.

    ``quorum_override`` exists only so tests can plant a quorum bug and prove the
    safety checker catches it; it is never set outside tests.
    """

    chain_id: str
    keys: tuple[bytes, ...]
    verifier: Verifier
    quorum_override: int | None = None
    epoch: int = 0
    first_height: int = 1

    def __post_init__(self) -> None:
        assert len(self.keys) >= 1 and len(set(self.keys)) == len(self.keys), "validator keys must be distinct"
        assert self.epoch >= 0 and self.first_height >= 1 and (self.epoch > 0 or self.first_height == 1)

    # Read on every vote: worked out once (the set is frozen).
    @functools.cached_property
    def signing_context(self) -> str:
        """What votes are signed under: the chain id, and the epoch after the first."""
        return self.chain_id if self.epoch == 0 else f"{self.chain_id}/epoch/{self.epoch}"

    @property
    def base(self) -> int:
        """The epoch's genesis checkpoint: the last block before its first height."""
        return self.first_height - 1

    @functools.cached_property
    def n(self) -> int:
        return len(self.keys)

    @property
    def f(self) -> int:
        return quorum.fault_tolerance(self.n)

    @functools.cached_property
    def quorum(self) -> int:
        return self.quorum_override or quorum.quorum_size(self.n)

    def primary(self, view: int) -> int:
        return view % self.n

    def check_signed(self, message: Vote | Checkpoint | ViewChange | NewView) -> None:
        if not 0 <= message.replica < self.n:
            raise InvalidMessage(f"replica {message.replica} is not a validator")
        if not self.verifier.verify(
            self.keys[message.replica],
            message.signature,
            message.domain,
            self.signing_context,
            signing_payload(message),
        ):
            raise InvalidMessage(f"bad {message.domain.value} signature from replica {message.replica}")

    def check_pre_prepare(self, pre_prepare: PrePrepare) -> None:
        vote = pre_prepare.vote
        if pre_prepare.proposal.height != vote.sequence or pre_prepare.proposal.digest != vote.digest:
            raise InvalidMessage("pre-prepare proposal does not match its vote")
        self.check_pre_prepare_vote(vote)

    def check_pre_prepare_vote(self, vote: Vote) -> None:
        if vote.kind is not VoteKind.PRE_PREPARE:
            raise InvalidMessage(f"a pre-prepare carries a {vote.kind.value} vote")
        if vote.replica != self.primary(vote.view):
            raise InvalidMessage(f"pre-prepare for view {vote.view} from replica {vote.replica}, not its primary")
        self.check_signed(vote)

    def check_votes(self, votes: Iterable[Vote], kind: VoteKind, view: int, sequence: int, digest: bytes) -> set[int]:
        """Verify matching votes; return the distinct replicas that cast them."""
        voters: set[int] = set()
        for vote in votes:
            if (vote.kind, vote.view, vote.sequence, vote.digest) != (kind, view, sequence, digest):
                raise InvalidMessage(f"{kind.value} votes in a certificate do not match")
            if vote.replica in voters:
                raise InvalidMessage(f"replica {vote.replica} votes twice in a certificate")
            self.check_signed(vote)
            voters.add(vote.replica)
        return voters

    def check_prepared_certificate(self, certificate: PreparedCertificate) -> None:
        """A pre-prepare from the view's primary and exactly quorum - 1 prepares from other
        replicas (exactly: a padded certificate would let one view change inflate a new-view)."""
        if len(certificate.prepares) != self.quorum - 1:
            count = len(certificate.prepares)
            raise InvalidMessage(f"prepared certificate has {count} prepares, needs {self.quorum - 1}")
        vote = certificate.pre_prepare
        if vote.sequence != certificate.header.height or vote.digest != header_digest(certificate.header):
            raise InvalidMessage(f"prepared certificate at {vote.sequence} does not match its header")
        self.check_pre_prepare_vote(vote)
        voters = self.check_votes(certificate.prepares, VoteKind.PREPARE, vote.view, vote.sequence, vote.digest)
        if self.primary(vote.view) in voters:
            raise InvalidMessage("the primary's prepare does not count towards a prepared certificate")

    def check_commit_certificate(self, certificate: CommitCertificate, sequence: int, digest: bytes) -> None:
        view = certificate.commits[0].view
        voters = self.check_votes(certificate.commits, VoteKind.COMMIT, view, sequence, digest)
        if len(voters) < self.quorum:
            raise InvalidMessage(f"commit certificate has {len(voters)} commits, needs {self.quorum}")

    def check_committed_block(self, block: Block, certificate: CommitCertificate, previous_hash: bytes) -> None:
        """A block of this epoch that extends ``previous_hash`` and that a quorum committed."""
        if block.height < self.first_height:
            raise InvalidMessage(f"block {block.height} is before epoch {self.epoch}, from {self.first_height}")
        try:
            check_block(block, self.chain_id, block.height, previous_hash)
        except BlockRejected as error:
            raise InvalidMessage(f"block {block.height}: {error}") from None
        self.check_commit_certificate(certificate, block.height, proposal_digest(block.header))

    def check_checkpoint_proof(self, sequence: int, proof: tuple[Checkpoint, ...]) -> bytes | None:
        """The block hash a quorum signed at ``sequence`` (None for the epoch's genesis checkpoint)."""
        if sequence < self.base:
            raise InvalidMessage(f"checkpoint {sequence} is before epoch {self.epoch}")
        if sequence == self.base:
            if proof:
                raise InvalidMessage("the epoch's genesis checkpoint needs no proof")
            return None
        hashes = {checkpoint.block_hash for checkpoint in proof}
        voters = {checkpoint.replica for checkpoint in proof}
        if len(hashes) != 1 or any(checkpoint.sequence != sequence for checkpoint in proof):
            raise InvalidMessage("checkpoint proof does not agree on one sequence and hash")
        if len(voters) != len(proof) or len(voters) != self.quorum:
            raise InvalidMessage(f"checkpoint proof has {len(voters)} distinct signers, needs exactly {self.quorum}")
        for checkpoint in proof:
            self.check_signed(checkpoint)
        return hashes.pop()

    def check_view_change(self, view_change: ViewChange, window: int) -> None:
        self.check_signed(view_change)
        stable = view_change.stable_sequence
        self.check_checkpoint_proof(stable, view_change.checkpoint_proof)
        sequences = set()
        for certificate in view_change.prepared:
            vote = certificate.pre_prepare
            if not stable < vote.sequence <= stable + window:
                raise InvalidMessage(
                    f"prepared certificate for sequence {vote.sequence} outside ({stable}, {stable + window}]"
                )
            if vote.view >= view_change.new_view:
                raise InvalidMessage("prepared certificate from a view not before the new one")
            if vote.sequence in sequences:
                raise InvalidMessage(f"two prepared certificates for sequence {vote.sequence}")
            sequences.add(vote.sequence)
            self.check_prepared_certificate(certificate)

    def check_new_view(self, new_view: NewView, window: int) -> None:
        """Signed by the view's primary, carrying a quorum of valid view changes for it.
        Its shape is checked before any signature: a signature check of a new-view encodes
        all of it, and one carries up to n view changes."""
        if new_view.replica != self.primary(new_view.view):
            raise InvalidMessage(f"new-view for view {new_view.view} from replica {new_view.replica}, not its primary")
        senders = {view_change.replica for view_change in new_view.view_changes}
        if len(senders) != len(new_view.view_changes) or len(senders) != self.quorum:
            raise InvalidMessage(f"new-view carries {len(senders)} distinct view changes, needs exactly {self.quorum}")
        if any(view_change.new_view != new_view.view for view_change in new_view.view_changes):
            raise InvalidMessage("new-view carries a view change for another view")
        if len(new_view.pre_prepares) > window:
            raise InvalidMessage(f"new-view carries {len(new_view.pre_prepares)} pre-prepares, more than the window")
        for vote, header in zip(new_view.pre_prepares, new_view.headers, strict=True):
            if vote.view != new_view.view:
                raise InvalidMessage("new-view carries a pre-prepare for another view")
            if vote.sequence != header.height or vote.digest != header_digest(header):
                raise InvalidMessage(f"new-view pre-prepare at {vote.sequence} does not match its header")
        self.check_signed(new_view)
        for view_change in new_view.view_changes:
            self.check_view_change(view_change, window)
        for vote in new_view.pre_prepares:
            self.check_pre_prepare_vote(vote)


def selected_proposals(view_changes: Iterable[ViewChange]) -> tuple[int, dict[int, ProposalHeader]]:
    """What a new view must re-propose (Castro & Liskov §4.4): the stable point and, for each
    sequence above it that prepared anywhere, the header of the proposal prepared in the
    highest view."""
    view_changes = list(view_changes)
    low = max(view_change.stable_sequence for view_change in view_changes)
    best: dict[int, PreparedCertificate] = {}
    for view_change in view_changes:
        for certificate in view_change.prepared:
            sequence = certificate.pre_prepare.sequence
            if sequence <= low:
                continue
            current = best.get(sequence)
            if current is None or certificate.pre_prepare.view > current.pre_prepare.view:
                best[sequence] = certificate
    return low, {sequence: certificate.header for sequence, certificate in sorted(best.items())}
