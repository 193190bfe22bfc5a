"""Many seeds of one scenario in parallel processes, summarised, with a replay command per failure."""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2pmed.sim.scenario_file import load_scenario
from p2pmed.sim.simulator import run_simulation

__all__ = ["SeedOutcome", "parse_seed_range", "sweep"]

SEEDS_MAX = 1_000_000


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


def _run_one(path: Path, seed: int) -> SeedOutcome:
    report: dict[str, Any] = run_simulation(load_scenario(path), seed).report
    violations = report["safety"]["violations"]
    liveness = report["liveness"]
    problem = ""
    if violations:
        first = violations[0]
        problem = f"safety: {first['kind']} at step {first['step']} ({first['time_s']} s): {first['detail']}"
    elif liveness["ok"] is False:
        problem = f"liveness: {liveness['detail']}"
    latency = report["latency_ms"]
    return SeedOutcome(seed, not problem, report["committed_txs"], latency["p50"], latency["p99"], report["wall_s"], problem)


def sweep(path: Path, seeds: range, jobs: int | None = None) -> Iterator[SeedOutcome]:
    """Yield each seed's outcome as it finishes (the scenario must already load)."""
    workers = max(1, min(jobs or os.cpu_count() or 1, len(seeds)))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_run_one, path, seed) for seed in seeds]
        for future in futures:
            yield future.result()


def summarise(outcomes: list[SeedOutcome], replay: Callable[[int], str]) -> list[str]:
    passed = [outcome for outcome in outcomes if outcome.ok]
    lines = [f"{len(passed)}/{len(outcomes)} seeds passed"]
    p50s = [outcome.latency_p50_ms for outcome in outcomes if outcome.latency_p50_ms is not None]
    p99s = [outcome.latency_p99_ms for outcome in outcomes if outcome.latency_p99_ms is not None]
    if p50s:
        lines.append(f"latency p50 across seeds: median {statistics.median(p50s):.0f} ms, worst {max(p50s):.0f} ms;"
                     f" p99: median {statistics.median(p99s):.0f} ms, worst {max(p99s):.0f} ms")
    for outcome in outcomes:
        if not outcome.ok:
            lines.append(f"seed {outcome.seed} FAILED: {outcome.problem}")
            lines.append(f"  replay: {replay(outcome.seed)}")
    return lines
