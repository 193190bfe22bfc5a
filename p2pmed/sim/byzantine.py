"""Byzantine behaviours: rewrite what a faulty replica sends.

A Byzantine node runs the honest replica and passes every outgoing message
through its behaviour, which may drop, alter, multiply or invent messages. It
signs with its own key only: it cannot forge another replica's signature, which
is exactly PBFT's fault model.

Twins (Bano et al., "Twins: BFT Systems Made Robust") is the exception that
needs the simulator's help: the node runs as two independent honest replicas
with one key, each talking to its own half of the other nodes (``twin_sides``).
Each copy's behaviour only filters what that copy sends; the simulator routes
what the halves send to the matching copy.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import TypeVar

from p2pmed.consensus.messages import (
    Blocks,
    BlockWithCertificate,
    Checkpoint,
    FetchBlocks,
    FetchProposal,
    Forward,
    Message,
    NewView,
    PrePrepare,
    Proposal,
    ViewChange,
    Vote,
    VoteKind,
    encode_message,
    header_digest,
    signing_payload,
)
from p2pmed.crypto import Signer
from p2pmed.ledger.block import Block
from p2pmed.ledger.tx import Transaction
from p2pmed.sim.scenario import Behaviour

__all__ = ["ByzantineBehaviour", "twin_sides"]

SignedT = TypeVar("SignedT", Vote, Checkpoint, ViewChange, NewView)

REPLAY_MEMORY = 200
GARBAGE_SIZE_MAX = 512
WARP_MS = 10 * 365 * 24 * 3600 * 1000
"""How far ``time_warp`` dates its proposals into the future (the past: as early as it can)."""
CHECKPOINT_CLAIM_FACTOR = 1 << 40
"""``bad_checkpoint`` claims this many times its real checkpoint sequence (still a checkpoint multiple)."""
FLOOD_COPIES = 4
CENSORED_OF = 4
"""A censoring primary leaves out the transactions whose id's first byte is a multiple of this."""
"""``flood`` sends this many block fetches and proposal fetches beside each message."""


@dataclass
class ByzantineBehaviour:
    behaviour: Behaviour
    index: int
    """Its replica's index in the current epoch's set (the host updates it at each epoch)."""
    signer: Signer
    signing_context: str
    """What its replica signs under (``Validators.signing_context``: the chain and epoch)."""
    rng: random.Random
    reach: frozenset[int] = frozenset()
    """Twins only: the nodes this copy talks to."""
    _sent: list[tuple[int, bytes]] = field(default_factory=list)
    _spam_view: int = 1 << 20
    _spam: list[bytes] = field(default_factory=list)

    def outgoing(self, messages: list[tuple[int, Message]]) -> list[tuple[int, bytes]]:
        """The (destination node, bytes) this node really sends instead of ``messages``.

        Always bytes, so that the receivers' decoders face whatever it invents."""
        if self.behaviour is Behaviour.SILENT:
            return []
        if self.behaviour is Behaviour.TWINS:
            return [
                (destination, encode_message(message)) for destination, message in messages if destination in self.reach
            ]
        out: list[tuple[int, bytes]] = []
        for destination, message in messages:
            out.extend(self._rewrite(destination, message))
        self._sent.extend(out)
        del self._sent[:-REPLAY_MEMORY]
        return out

    def _rewrite(self, destination: int, message: Message) -> list[tuple[int, bytes]]:
        honest = [(destination, encode_message(message))]
        if self.behaviour is Behaviour.EQUIVOCATE and isinstance(message, PrePrepare) and destination % 2 == 0:
            return [(destination, encode_message(self._other_proposal(message)))]
        if self.behaviour is Behaviour.CONFLICTING_VOTES and isinstance(message, Vote) and destination % 2 == 0:
            return [(destination, encode_message(self._resign(message, digest=self.rng.randbytes(32))))]
        if self.behaviour is Behaviour.GARBAGE:
            return [*honest, (destination, self.rng.randbytes(self.rng.randint(0, GARBAGE_SIZE_MAX)))]
        if self.behaviour is Behaviour.REPLAY and self._sent:
            return [*honest, *(self._sent[self.rng.randrange(len(self._sent))] for _ in range(2))]
        if self.behaviour is Behaviour.CENSOR and isinstance(message, PrePrepare):
            return [(destination, encode_message(self._censored(message)))]
        if self.behaviour is Behaviour.TIME_WARP and isinstance(message, PrePrepare):
            return [(destination, encode_message(self._warped(message)))]
        if self.behaviour is Behaviour.BAD_CHECKPOINT and isinstance(message, Checkpoint):
            claim = dataclasses.replace(
                message, sequence=message.sequence * CHECKPOINT_CLAIM_FACTOR, block_hash=self.rng.randbytes(32)
            )
            return [*honest, (destination, encode_message(self._signed(claim)))]
        if self.behaviour is Behaviour.VIEW_SPAM and isinstance(message, Vote):
            return [*honest, *((destination, spam) for spam in self._view_spam())]
        if self.behaviour is Behaviour.BAD_NEW_VIEW and isinstance(message, NewView):
            return [(destination, encode_message(self._dropping_prepared(message)))]
        if self.behaviour is Behaviour.BAD_BLOCKS and isinstance(message, Blocks) and message.blocks:
            return [(destination, encode_message(self._bad_blocks(message)))]
        if self.behaviour is Behaviour.FLOOD:
            flood: list[Message] = [
                FetchBlocks(1, self.index),
                FetchProposal(1, self.rng.randbytes(32), self.index),
                Forward((self._forged_transaction(),), self.index),
            ]
            return [*honest, *((destination, encode_message(message)) for message in flood * FLOOD_COPIES)]
        if self.behaviour is Behaviour.FORGE and isinstance(message, Vote):
            forged = Vote(
                message.kind,
                message.view,
                message.sequence,
                self.rng.randbytes(32),
                message.replica,
                self.rng.randbytes(64),
            )
            return [*honest, (destination, encode_message(forged))]
        return honest

    def _forged_transaction(self) -> Transaction:
        """A transaction of a random sender with a random signature: it checks out nowhere."""
        return Transaction("sim.noop", "p2pmed-sim", self.rng.randbytes(32), 0, {}, self.rng.randbytes(64))

    def _other_proposal(self, pre_prepare: PrePrepare) -> PrePrepare:
        """Same view and sequence, different batch: the classic equivocating primary."""
        original = pre_prepare.proposal
        txs = original.txs[:-1] if original.txs else ()
        proposal = Proposal(original.height, original.time_ms + 1, original.proposer, txs, original.state)
        vote = self._resign(pre_prepare.vote, digest=proposal.digest)
        return PrePrepare(vote, proposal)

    def _censored(self, pre_prepare: PrePrepare) -> PrePrepare:
        """The batch without the transactions it censors (a quarter, by id), the same to every
        replica and validly signed: whatever a backup forwards of them, it leaves out again."""
        original = pre_prepare.proposal
        txs = tuple(tx for tx in original.txs if tx.id[0] % CENSORED_OF)
        if len(txs) == len(original.txs):
            return pre_prepare
        proposal = Proposal(original.height, original.time_ms, original.proposer, txs, original.state)
        return PrePrepare(self._resign(pre_prepare.vote, digest=proposal.digest), proposal)

    def _warped(self, pre_prepare: PrePrepare) -> PrePrepare:
        """The same batch dated years ahead (odd heights) or at the start of time (even ones),
        validly signed, and the same to every replica: a time warp, not an equivocation."""
        original = pre_prepare.proposal
        time_ms = original.time_ms + WARP_MS if original.height % 2 else 1
        proposal = Proposal(original.height, time_ms, original.proposer, original.txs, original.state)
        return PrePrepare(self._resign(pre_prepare.vote, digest=proposal.digest), proposal)

    def _view_spam(self) -> list[bytes]:
        """A validly signed view change for a view higher than the last one sent, and a
        replay of an earlier one."""
        self._spam_view += 1
        spam = encode_message(self._signed(ViewChange(self._spam_view, 0, (), (), self.index, bytes(64))))
        self._spam.append(spam)
        del self._spam[:-REPLAY_MEMORY]
        return [spam, self._spam[self.rng.randrange(len(self._spam))]]

    def _dropping_prepared(self, new_view: NewView) -> NewView:
        """The same view changes, but every sequence refilled with an empty proposal of its
        own, as if nothing had prepared (or one empty proposal too many when nothing did)."""
        headers = [
            Proposal(header.height, header.time_ms + 1, self.signer.public_key, ()).header
            for header in new_view.headers
        ]
        if not headers:
            low = max(view_change.stable_sequence for view_change in new_view.view_changes)
            headers = [Proposal(low + 1, 1, self.signer.public_key, ()).header]
        votes = tuple(
            self._signed(Vote(VoteKind.PRE_PREPARE, new_view.view, h.height, header_digest(h), self.index, bytes(64)))
            for h in headers
        )
        return self._signed(dataclasses.replace(new_view, pre_prepares=votes, headers=tuple(headers)))

    def _bad_blocks(self, answer: Blocks) -> Blocks:
        """A state-transfer answer forged one of three ways: blocks in reverse order, the
        first block with a transaction dropped (its certificate no longer matches), or
        an empty answer that claims more."""
        match self.rng.randrange(3):
            case 0 if len(answer.blocks) > 1:
                return Blocks(tuple(reversed(answer.blocks)), answer.more)
            case 1 if answer.blocks[0].block.txs:
                first = answer.blocks[0]
                forged = Block(first.block.header, first.block.txs[1:])
                return Blocks((BlockWithCertificate(forged, first.certificate), *answer.blocks[1:]), answer.more)
            case _:
                return Blocks((), more=True)

    def _resign(self, vote: Vote, digest: bytes) -> Vote:
        return self._signed(dataclasses.replace(vote, digest=digest))

    def _signed(self, message: SignedT) -> SignedT:
        """``message`` signed with this node's own key: all a Byzantine replica can sign."""
        unsigned = dataclasses.replace(message, signature=bytes(64))
        return dataclasses.replace(
            message, signature=self.signer.sign(unsigned.domain, self.signing_context, signing_payload(unsigned))
        )


def twin_sides(index: int, nodes: int) -> tuple[frozenset[int], frozenset[int]]:
    """The halves of the other nodes that the two copies of twinned node ``index`` talk to."""
    others = [other for other in range(nodes) if other != index]
    return frozenset(others[0::2]), frozenset(others[1::2])
