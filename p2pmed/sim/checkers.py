"""Checkers that watch every simulation (Jepsen-style): safety as it happens, liveness at the end.

Safety, checked on every block an honest replica commits:
  - agreement: no two honest replicas commit different blocks at one height
    (with hash chaining this also makes every honest chain a prefix of the longest);
  - the block carries a valid commit certificate;
  - no transaction is executed twice by one replica;
  - only transactions a client submitted are committed;
  - time: no block is dated more than ``time_skew_max_ms`` past the latest honest
    clock when it commits (a primary cannot move the ledger's clock ahead).
Liveness, checked when the run ends: every transaction submitted was committed by
every live honest replica, provided the faults at the end are within what PBFT
tolerates (at most f faulty replicas, network healed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from p2pmed.consensus.certificates import InvalidMessage, Validators
from p2pmed.consensus.messages import CommitCertificate, proposal_digest
from p2pmed.ledger.block import Block

__all__ = ["SafetyChecker", "Violation"]

VIOLATIONS_MAX = 20
"""Violations kept per kind: one bug repeats at every block, and must not hide another kind."""


@dataclass(frozen=True)
class Violation:
    kind: str
    step: int
    time_s: float
    node: int
    detail: str


@dataclass
class SafetyChecker:
    validators: Validators
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
        try:
            self.validators.check_commit_certificate(certificate, block.height, proposal_digest(block.header))
        except InvalidMessage as error:
            violation("certificate", f"height {block.height}: {error.reason}")
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
