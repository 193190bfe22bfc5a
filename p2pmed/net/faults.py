"""Application-level fault injection on the consensus transport, for tests and the harness.

The test machines have no ``tc netem`` and no iptables, so a node started with
``[fault_injection] enabled = true`` lets its RPC client (``debug.faults``) make
its consensus traffic lossy, slow or partitioned:

- ``drop``: each outgoing frame is dropped with this probability;
- ``delay_ms``: each outgoing frame leaves this much later;
- ``blocked_out`` / ``blocked_in``: validators this node sends nothing to /
  ignores everything from. A partition is the same sets on both sides; a
  one-way partition is one of them.

It acts on consensus frames only: transactions still spread by gossip, so a
partition here models validators that cannot agree with each other, not clients
that cannot reach them. It is off unless the operator's config turns it on; the
random choices come from their own generator, seeded by the node.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["FaultInjector", "FaultRules"]

DELAYED_FRAMES_MAX = 10_000


@dataclass(frozen=True)
class FaultRules:
    drop: float = 0.0
    delay_ms: int = 0
    blocked_out: frozenset[int] = frozenset()
    blocked_in: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop <= 1.0:
            raise ValueError(f"drop must be a probability from 0 to 1, got {self.drop}")
        if not 0 <= self.delay_ms <= 60_000:
            raise ValueError(f"delay_ms must be 0..60000, got {self.delay_ms}")


@dataclass
class FaultInjector:
    seed: int
    rules: FaultRules = field(default_factory=FaultRules)
    dropped_out: int = 0
    dropped_in: int = 0
    delayed: int = 0

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def outgoing_delay(self, to: int) -> float | None:
        """Seconds to hold a frame for validator ``to`` (0: send now), or None to drop it."""
        if to in self.rules.blocked_out or (self.rules.drop and self._random.random() < self.rules.drop):
            self.dropped_out += 1
            return None
        if self.rules.delay_ms:
            if self.delayed >= DELAYED_FRAMES_MAX:
                self.dropped_out += 1
                return None
            return self.rules.delay_ms / 1000
        return 0.0

    def admits(self, sender: int) -> bool:
        if sender in self.rules.blocked_in:
            self.dropped_in += 1
            return False
        return True
