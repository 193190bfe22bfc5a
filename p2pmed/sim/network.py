"""The simulated network: latency, loss, duplication, reordering and partitions, from one RNG."""

from __future__ import annotations

import random
from dataclasses import dataclass

from p2pmed.sim.scenario import NetworkSpec

__all__ = ["SimNetwork"]

REORDER_EXTRA_DELAY_MS = 200


@dataclass
class SimNetwork:
    """Decides when (and whether, and how often) a message sent now arrives."""

    rng: random.Random
    latency_ms: tuple[int, int]
    drop: float
    duplicate: float
    reorder: float
    groups: dict[int, int] | None = None
    one_way: bool = False

    @classmethod
    def from_spec(cls, spec: NetworkSpec, rng: random.Random) -> SimNetwork:
        return cls(rng, spec.latency_ms, spec.drop, spec.duplicate, spec.reorder)

    def partition(self, groups: tuple[tuple[int, ...], ...], one_way: bool = False) -> None:
        """Only nodes in the same group reach each other; nodes in no group are isolated.
        One way (two groups): only messages from ``groups[0]`` to ``groups[1]`` are lost."""
        self.groups = {node: index for index, group in enumerate(groups) for node in group}
        self.one_way = one_way

    def heal(self) -> None:
        self.groups = None
        self.one_way = False

    def connected(self, source: int, destination: int) -> bool:
        if self.groups is None or source == destination:
            return True
        if self.one_way:
            return not (self.groups.get(source) == 0 and self.groups.get(destination) == 1)
        group = self.groups.get(source)
        return group is not None and group == self.groups.get(destination)

    def delivery_delays_ms(self, source: int, destination: int) -> list[int]:
        """Delays after which copies of one message arrive (empty: lost)."""
        if not self.connected(source, destination) or self.rng.random() < self.drop:
            return []
        copies = 2 if self.rng.random() < self.duplicate else 1
        delays = []
        low_ms, high_ms = self.latency_ms
        for _ in range(copies):
            delay = low_ms + self._below(high_ms - low_ms + 1)
            if self.rng.random() < self.reorder:
                delay += self._below(REORDER_EXTRA_DELAY_MS + 1)
            delays.append(delay)
        return delays

    def _below(self, bound: int) -> int:
        """What ``rng.randint(0, bound - 1)`` draws (the same numbers from the same stream:
        randint is randrange is this), without its two wrapper calls on every message."""
        drawn: int = self.rng._randbelow(bound)  # type: ignore[attr-defined]
        return drawn
