"""Shrinking a failing scenario: a smaller one that fails the same way with the same seed.

Greedy delta debugging over the scenario's parts: lower the transaction rate
(halving; first, because it makes every later run cheaper), drop faults (all of
them, then halves, quarters, ... down to one at a time), move the whole fault
schedule earlier (the first fault at 0 s), shorten the workload (bisection,
never before the last fault or validator set change), and quieten the network (no loss, duplication or
reordering). Each candidate is run with the same seed; it is kept when it fails
the same way: the same kind of first safety violation, or a liveness failure.
The passes repeat until none makes progress or ``runs_max`` runs are spent.
Every run is deterministic, so the result is too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, Unpack

from p2pmed.sim.scenario import Fault, Scenario
from p2pmed.sim.simulator import run_simulation

__all__ = ["RUNS_MAX", "Shrunk", "failure_signature", "shrink", "worst_violation"]

RUNS_MAX = 40
RATE_MIN = 1.0
DURATION_STEP_S = 1.0


@dataclass(frozen=True)
class Shrunk:
    original: Scenario
    scenario: Scenario
    seed: int
    failure: str
    runs: int

    def summary(self) -> str:
        """``4 faults -> 1, 30 s -> 9 s, 100 tx/s -> 12.5 tx/s (17 runs)``; unchanged parts left out."""
        before, after = self.original, self.scenario
        parts = []
        if len(after.faults) != len(before.faults):
            parts.append(f"{len(before.faults)} faults -> {len(after.faults)}")
        if after.workload.duration_s != before.workload.duration_s:
            parts.append(f"{before.workload.duration_s:g} s -> {after.workload.duration_s:g} s")
        if after.workload.rate != before.workload.rate:
            parts.append(f"{before.workload.rate:g} tx/s -> {after.workload.rate:g} tx/s")
        if after.network != before.network:
            parts.append("quieter network")
        return (", ".join(parts) or "no smaller scenario fails the same way") + f" ({self.runs} runs)"


SEVERITY = ("agreement", "executed-twice", "not-submitted", "certificate", "time")
"""Safety violation kinds, worst first: a fork is what a shrunk scenario should keep showing,
though a weak certificate that let it happen is reported before it."""


def worst_violation(report: dict[str, Any]) -> dict[str, Any] | None:
    """The first violation of the worst kind in ``report`` (``SEVERITY``), if any."""
    violations = report["safety"]["violations"]
    rank = {kind: index for index, kind in enumerate(SEVERITY)}
    return min(violations, key=lambda violation: rank.get(violation["kind"], len(SEVERITY)), default=None)


def failure_signature(report: dict[str, Any]) -> str | None:
    """What "fails the same way" compares: ``safety: <worst violation kind>``, ``liveness``, or None."""
    worst = worst_violation(report)
    if worst is not None:
        return f"safety: {worst['kind']}"
    if report["liveness"]["ok"] is False:
        return "liveness"
    return None


def shrink(scenario: Scenario, seed: int, *, quorum_override: int | None = None, runs_max: int = RUNS_MAX) -> Shrunk:
    """The smallest scenario found that fails like ``scenario`` does with ``seed``.

    Raises ``ValueError`` when ``scenario`` does not fail with ``seed``."""
    assert runs_max >= 1
    failure = failure_signature(run_simulation(scenario, seed, quorum_override=quorum_override).report)
    if failure is None:
        raise ValueError(f"{scenario.name} passes with seed {seed}; there is no failure to shrink")
    search = _Search(scenario, seed, failure, quorum_override, runs_max)
    progress = True
    while progress and search.budget_left():
        progress = False
        for reduce in (_lower_rate, _drop_faults, _move_earlier, _shorten, _quieten):
            progress = reduce(search) or progress
    return Shrunk(scenario, search.best, seed, failure, search.runs)


class _Search:
    """The best scenario so far, and the runs spent finding it."""

    def __init__(self, best: Scenario, seed: int, failure: str, quorum_override: int | None, runs_max: int) -> None:
        self.best, self.seed, self.failure = best, seed, failure
        self.quorum_override, self.runs_max = quorum_override, runs_max
        self.runs = 1

    def budget_left(self) -> bool:
        return self.runs < self.runs_max

    def attempt(self, candidate: Scenario) -> bool:
        """Run ``candidate``; keep it as the best if it fails the same way."""
        if not self.budget_left():
            return False
        self.runs += 1
        report = run_simulation(candidate, self.seed, quorum_override=self.quorum_override).report
        if failure_signature(report) != self.failure:
            return False
        self.best = candidate
        return True


def _drop_faults(search: _Search) -> bool:
    progress = False
    chunk = len(search.best.faults)
    while chunk >= 1 and search.budget_left():
        start = 0
        while start < len(search.best.faults) and search.budget_left():
            faults = search.best.faults
            if search.attempt(_with_faults(search.best, faults[:start] + faults[start + chunk :])):
                progress = True
            else:
                start += chunk
        chunk //= 2
    return progress


def _lower_rate(search: _Search) -> bool:
    progress = False
    while search.best.workload.rate / 2 >= RATE_MIN and search.attempt(
        _with_workload(search.best, rate=search.best.workload.rate / 2)
    ):
        progress = True
    return progress


def _move_earlier(search: _Search) -> bool:
    faults = search.best.faults
    if not faults or faults[0].at_s == 0:
        return False
    shift = faults[0].at_s
    return search.attempt(_with_faults(search.best, tuple(dataclasses.replace(f, at_s=f.at_s - shift) for f in faults)))


def _shorten(search: _Search) -> bool:
    """Bisect the duration between the last fault or change (or one step) and the current one."""
    events_s = [fault.at_s for fault in search.best.faults] + [change.at_s for change in search.best.changes]
    floor = max([DURATION_STEP_S, *events_s])
    low, high = floor - DURATION_STEP_S, search.best.workload.duration_s
    progress = False
    while high - low > DURATION_STEP_S and search.budget_left():
        middle = max(floor, math.ceil((low + high) / 2 / DURATION_STEP_S) * DURATION_STEP_S)
        if middle >= high:
            break
        if search.attempt(_with_workload(search.best, duration_s=middle)):
            high, progress = middle, True
        else:
            low = middle
    return progress


class _NetworkChanges(TypedDict, total=False):
    drop: float
    duplicate: float
    reorder: float


class _WorkloadChanges(TypedDict, total=False):
    rate: float
    duration_s: float


def _quieten(search: _Search) -> bool:
    progress = False
    name: Literal["drop", "duplicate", "reorder"]
    for name in ("drop", "duplicate", "reorder"):
        quiet: _NetworkChanges = {}
        quiet[name] = 0.0
        if getattr(search.best.network, name) and search.attempt(
            dataclasses.replace(search.best, network=dataclasses.replace(search.best.network, **quiet))
        ):
            progress = True
    return progress


def _with_faults(scenario: Scenario, faults: tuple[Fault, ...]) -> Scenario:
    return dataclasses.replace(scenario, faults=faults)


def _with_workload(scenario: Scenario, **changes: Unpack[_WorkloadChanges]) -> Scenario:
    return dataclasses.replace(scenario, workload=dataclasses.replace(scenario.workload, **changes))
