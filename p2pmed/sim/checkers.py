"""Checkers that watch every simulation (Jepsen-style): safety as it happens, liveness at the end.

Safety, checked on every block an honest replica commits:
  - agreement: no two honest replicas commit different blocks at one height
    (with hash chaining this also makes every honest chain a prefix of the longest);
  - the block carries a valid commit certificate of a quorum of its epoch's validator set,
    the set read from the chain itself as a light client reads it (``validators_at`` over
    the state the decided blocks before it built), never from the simulator's bookkeeping;
  - no transaction is executed twice by one replica;
  - only transactions a client submitted are committed;
  - time: no block is dated more than ``time_skew_max_ms`` past the latest honest
    clock when it commits (a primary cannot move the ledger's clock ahead).
Liveness, checked when the run ends: every transaction submitted was committed by
every live honest replica, provided the faults at the end are within what PBFT
tolerates (at most f faulty replicas, network healed).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from p2pmed.consensus.certificates import InvalidMessage, Validators
from p2pmed.consensus.light_client import validators_at
from p2pmed.consensus.messages import CommitCertificate, proposal_digest
from p2pmed.crypto import Verifier
from p2pmed.ledger.block import Block
from p2pmed.ledger.machine import Ledger
from p2pmed.sim.chain import NodeChain

__all__ = ["EpochSets", "SafetyChecker", "Violation"]

VIOLATIONS_MAX = 20
"""Violations kept per kind: one bug repeats at every block, and must not hide another kind."""


@dataclass(frozen=True)
class Violation:
    kind: str
    step: int
    time_s: float
    node: int
    detail: str


class EpochSets:
    """The validator set of every height, as a light client learns it: the chain of decided
    blocks executed in order with the ledger, each epoch's set read from the state below it."""

    def __init__(self, ledger: Ledger, verifier: Verifier) -> None:
        self.ledger, self.verifier = ledger, verifier
        self.chain = NodeChain.genesis(ledger)
        self._sets: list[Validators] = [self._next_set()]
        self._first_heights = [1]

    def _next_set(self) -> Validators:
        return validators_at(self.chain, self.chain.height + 1, self.ledger.chain_id, self.verifier)

    def at(self, height: int) -> Validators:
        """The set that certifies ``height``, at most one above the blocks taken so far."""
        assert 1 <= height <= self.chain.height + 1, "the checker learns the chain in order"
        return self._sets[bisect.bisect_right(self._first_heights, height) - 1]

    def take(self, block: Block, certificate: CommitCertificate) -> None:
        """The decided block after the last one taken."""
        self.chain.append(self.ledger, block, certificate)
        following = self._next_set()
        if following.epoch != self._sets[-1].epoch:
            self._sets.append(following)
            self._first_heights.append(following.first_height)

    @property
    def epochs(self) -> list[Validators]:
        return list(self._sets)


@dataclass
class SafetyChecker:
    sets: EpochSets
    time_skew_max_ms: int
    submitted: set[bytes] = field(default_factory=set)
    decided: dict[int, bytes] = field(default_factory=dict)
    executed: dict[int, set[bytes]] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)

    def report(self, kind: str, step: int, time_s: float, node: int, detail: str) -> None:
        if sum(violation.kind == kind for violation in self.violations) < VIOLATIONS_MAX:
            self.violations.append(Violation(kind, step, round(time_s, 6), node, detail))

    def on_commit(
        self,
        node: int,
        block: Block,
        certificate: CommitCertificate,
        step: int,
        time_s: float,
        honest_clock_ms: int,
    ) -> None:
        """``honest_clock_ms``: the latest of the honest nodes' clocks now."""

        def violation(kind: str, detail: str) -> None:
            self.report(kind, step, time_s, node, detail)

        if block.header.time_ms > honest_clock_ms + self.time_skew_max_ms:
            violation(
                "time",
                f"height {block.height} dated {block.header.time_ms - honest_clock_ms} ms past the latest honest clock",
            )

        first = self.decided.setdefault(block.height, block.hash)
        if first != block.hash:
            violation(
                "agreement",
                f"height {block.height}: {block.hash.hex()[:16]} but another honest replica committed "
                f"{first.hex()[:16]}",
            )
        validators = self.sets.at(block.height)
        try:
            validators.check_commit_certificate(certificate, block.height, proposal_digest(block.header))
        except InvalidMessage as error:
            violation("certificate", f"height {block.height} (epoch {validators.epoch}): {error.reason}")
        if block.height == self.sets.chain.height + 1 and first == block.hash:
            self.sets.take(block, certificate)
        executed = self.executed.setdefault(node, set())
        for tx in block.txs:
            if tx.id in executed:
                violation("executed-twice", f"height {block.height}: tx {tx.id.hex()[:16]} executed again")
            if tx.id not in self.submitted:
                violation("not-submitted", f"height {block.height}: tx {tx.id.hex()[:16]} was never submitted")
            executed.add(tx.id)

    @property
    def ok(self) -> bool:
        return not self.violations
