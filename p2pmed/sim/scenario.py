"""What a simulation runs: network, workload and fault schedule, as typed values.

``load_scenario`` (in ``p2pmed.sim.scenario_file``) builds these from a TOML file
and raises ``ScenarioError`` naming the key at fault; the simulator only ever
sees a valid ``Scenario``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from p2pmed.input_error import KeyedInputError

__all__ = [
    "TX_KINDS",
    "Behaviour",
    "Change",
    "Fault",
    "FaultKind",
    "NetworkSpec",
    "Scenario",
    "ScenarioError",
    "WorkloadSpec",
]


class ScenarioError(KeyedInputError):
    """A scenario file that cannot be run; ``key`` is the dotted path of the bad entry."""


class FaultKind(enum.StrEnum):
    CRASH = "crash"
    RESTART = "restart"
    PAUSE = "pause"
    RESUME = "resume"
    PARTITION = "partition"
    HEAL = "heal"
    BYZANTINE = "byzantine"
    DROP = "drop"
    DELAY = "delay"
    CLOCK_SKEW = "clock_skew"


class Behaviour(enum.StrEnum):
    EQUIVOCATE = "equivocate"
    SILENT = "silent"
    CONFLICTING_VOTES = "conflicting_votes"
    GARBAGE = "garbage"
    REPLAY = "replay"
    FORGE = "forge"
    TWINS = "twins"
    TIME_WARP = "time_warp"
    BAD_CHECKPOINT = "bad_checkpoint"
    VIEW_SPAM = "view_spam"
    BAD_NEW_VIEW = "bad_new_view"
    BAD_BLOCKS = "bad_blocks"
    FLOOD = "flood"
    CENSOR = "censor"


@dataclass(frozen=True)
class NetworkSpec:
    nodes: int
    latency_ms: tuple[int, int] = (5, 50)
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    validators: int | None = None
    """The genesis validators, nodes ``0 .. validators-1`` (None: every node); the nodes
    after them start outside the set, as sites that changes may vote in."""

    @property
    def genesis_validators(self) -> int:
        return self.nodes if self.validators is None else self.validators


TX_KINDS = ("probe", "consent", "record", "supply")
"""What a workload may send: ``load.probe``, consent grants, record anchors, supply scans."""


@dataclass(frozen=True)
class WorkloadSpec:
    rate: float = 100.0
    duration_s: float = 60.0
    mix: tuple[tuple[str, float], ...] = (("probe", 1.0),)
    """Relative weights of ``TX_KINDS``; only real processes execute them (the simulator orders
    transactions without running the ledger's rules, so to it every kind is alike)."""


@dataclass(frozen=True)
class Fault:
    """One scheduled fault. Which fields matter depends on ``kind``:

    crash/restart: ``node``; pause/resume: ``node`` (frozen, as by SIGSTOP: it keeps
    its memory, and what was sent to it waits until it resumes); partition: ``groups`` (nodes in no group are isolated),
    or with ``one_way`` exactly two groups, only messages from ``groups[0]`` to
    ``groups[1]`` being lost; heal: none; byzantine: ``node`` and ``behaviour``; drop: ``probability``;
    delay: ``latency_ms``; clock_skew: ``node`` and ``skew_ms``.
    """

    at_s: float
    kind: FaultKind
    node: int | None = None
    groups: tuple[tuple[int, ...], ...] = ()
    behaviour: Behaviour | None = None
    probability: float | None = None
    latency_ms: tuple[int, int] | None = None
    skew_ms: int | None = None
    one_way: bool = False


@dataclass(frozen=True)
class Change:
    """One scheduled change of the validator set: from ``at_s`` on (or, if a change before it
    has not yet taken effect, as soon as it has), every honest validator of the set in force
    votes to add the next ``add`` nodes that never were validators (in index order) and to
    remove the nodes ``remove`` (and the current primary if ``remove_primary``). A
    replacement is both in one change."""

    at_s: float
    add: int = 0
    remove: tuple[int, ...] = ()
    remove_primary: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    network: NetworkSpec
    workload: WorkloadSpec
    faults: tuple[Fault, ...]
    liveness_bound_s: float = 30.0
    """After the last fault heals (and the workload ends), every submitted
    transaction must commit on every live honest replica within this bound."""
    changes: tuple[Change, ...] = ()
    """Validator set changes, in time order."""
