"""Many seeds of one scenario in parallel processes, summarised, with a replay command per
failure; the first failures shrunk (``p2pmed.sim.shrink``) and written as scenario files.

The processes are local (``jobs`` of them) or the workers of a Dask cluster
(``p2pmed.sim.cluster``); either runs the same functions on the parsed scenario."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from p2pmed.sim.cluster import ClusterPool, Future
from p2pmed.sim.scenario import Scenario
from p2pmed.sim.scenario_file import dump_scenario, load_scenario
from p2pmed.sim.shrink import Shrunk, shrink, worst_violation
from p2pmed.sim.simulator import run_simulation

__all__ = [
    "SHRINK_FAILURES_MAX",
    "SeedOutcome",
    "parse_seed_range",
    "shrink_failures",
    "summarise",
    "sweep",
    "write_shrunk",
]

SEEDS_MAX = 1_000_000
SHRINK_FAILURES_MAX = 5

R = TypeVar("R")


class Pool(Protocol):
    def submit(self, task: Callable[..., R], /, *arguments: Any) -> Future[R]: ...


@dataclass(frozen=True)
class SeedOutcome:
    seed: int
    ok: bool
    committed_txs: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    wall_s: float
    problem: str


def parse_seed_range(text: str) -> range:
    """``"1..100"`` (inclusive) or a single ``"7"``; raises ``ValueError`` with the reason."""
    low_text, separator, high_text = text.partition("..")
    try:
        low = int(low_text)
        high = int(high_text) if separator else low
    except ValueError:
        raise ValueError(f"expected A..B or N, got {text!r}") from None
    if low < 0 or high < low or high - low + 1 > SEEDS_MAX:
        raise ValueError(f"expected seeds A..B with 0 <= A <= B, at most {SEEDS_MAX} of them; got {text!r}")
    return range(low, high + 1)


def _run_one(scenario: Scenario, seed: int, quorum_override: int | None) -> SeedOutcome:
    report: dict[str, Any] = run_simulation(scenario, seed, quorum_override=quorum_override).report
    worst = worst_violation(report)
    liveness = report["liveness"]
    problem = ""
    if worst is not None:
        problem = f"safety: {worst['kind']} at step {worst['step']} ({worst['time_s']} s): {worst['detail']}"
    elif liveness["ok"] is False:
        problem = f"liveness: {liveness['detail']}"
    latency = report["latency_ms"]
    return SeedOutcome(
        seed, not problem, report["committed_txs"], latency["p50"], latency["p99"], report["wall_s"], problem
    )


def sweep(
    path: Path,
    seeds: range,
    jobs: int | None = None,
    quorum_override: int | None = None,
    cluster: ClusterPool | None = None,
) -> Iterator[SeedOutcome]:
    """Yield each seed's outcome in seed order (the scenario must already load); on ``cluster``
    if given, else in ``jobs`` local processes."""
    scenario = load_scenario(path)
    with _pool(jobs, len(seeds), cluster) as pool:
        futures = [(seed, pool.submit(_run_one, scenario, seed, quorum_override)) for seed in seeds]
        for seed, future in futures:
            outcome = future.result()
            assert isinstance(outcome, SeedOutcome) and outcome.seed == seed, "a worker answered another task"
            yield outcome


def _shrink_one(scenario: Scenario, seed: int, quorum_override: int | None) -> Shrunk:
    return shrink(scenario, seed, quorum_override=quorum_override)


def shrink_failures(
    path: Path,
    seeds: list[int],
    jobs: int | None = None,
    quorum_override: int | None = None,
    cluster: ClusterPool | None = None,
) -> Iterator[Shrunk]:
    """Shrink the failure of each of ``seeds``, in parallel; yield the results in the order of ``seeds``."""
    scenario = load_scenario(path)
    with _pool(jobs, len(seeds), cluster) as pool:
        futures = [(seed, pool.submit(_shrink_one, scenario, seed, quorum_override)) for seed in seeds]
        for seed, future in futures:
            shrunk = future.result()
            assert isinstance(shrunk, Shrunk) and shrunk.seed == seed, "a worker answered another task"
            yield shrunk


def _pool(jobs: int | None, tasks: int, cluster: ClusterPool | None) -> AbstractContextManager[Pool]:
    if cluster is not None:
        return nullcontext(cluster)  # the caller connected it and closes it
    return ProcessPoolExecutor(max_workers=_workers(jobs, tasks))


def write_shrunk(shrunk: Shrunk, source: Path, out: Path) -> Path:
    """Write the shrunk scenario as ``out/shrunk-seed-N.toml``, which ``sim run`` replays."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"shrunk-seed-{shrunk.seed}.toml"
    description = f"Shrunk from {source} for seed {shrunk.seed}: still fails with {shrunk.failure}; {shrunk.summary()}."
    path.write_text(dump_scenario(shrunk.scenario, description))
    return path


def _workers(jobs: int | None, tasks: int) -> int:
    return max(1, min(jobs or os.cpu_count() or 1, tasks))


def summarise(
    outcomes: list[SeedOutcome], replay: Callable[[int], str], notes: Mapping[int, list[str]] | None = None
) -> list[str]:
    """The summary lines; ``notes`` adds lines under a failed seed (e.g. its shrunk replay)."""
    passed = [outcome for outcome in outcomes if outcome.ok]
    lines = [f"{len(passed)}/{len(outcomes)} seeds passed"]
    p50s = [outcome.latency_p50_ms for outcome in outcomes if outcome.latency_p50_ms is not None]
    p99s = [outcome.latency_p99_ms for outcome in outcomes if outcome.latency_p99_ms is not None]
    if p50s:
        lines.append(
            f"latency p50 across seeds: median {statistics.median(p50s):.0f} ms, worst {max(p50s):.0f} ms;"
            f" p99: median {statistics.median(p99s):.0f} ms, worst {max(p99s):.0f} ms"
        )
    for outcome in outcomes:
        if not outcome.ok:
            lines.append(f"seed {outcome.seed} FAILED: {outcome.problem}")
            lines.append(f"  replay: {replay(outcome.seed)}")
            lines.extend((notes or {}).get(outcome.seed, []))
    return lines
