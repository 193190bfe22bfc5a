"""``p2pmed bench --sim``: how much faster than real time the simulator runs a fault-free network.

The simulator drives the pure PBFT core on a virtual clock (``p2pmed.sim``), so
its speed is simulated seconds per wall second: the higher, the more seeds a
sweep covers. The target is ``SPEEDUP_TARGET`` x for 4 nodes at 100 tx/s. Each
run uses the fixed seed ``SEED`` and no faults; the simulator's fast signer
stands in for Ed25519 (as in every simulation), so these figures say nothing
about the real network's speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from p2pmed.sim.scenario import NetworkSpec, Scenario, WorkloadSpec
from p2pmed.sim.simulator import run_simulation

__all__ = [
    "DEFAULT_RATES",
    "SEED",
    "SPEEDUP_TARGET",
    "SPEEDUP_TARGET_RATE",
    "SimSpeed",
    "measure_sim_speed",
    "sim_json",
    "sim_lines",
]

SEED = 1
SPEEDUP_TARGET = 200.0
SPEEDUP_TARGET_RATE = 100.0
DEFAULT_RATES = (100.0, 1000.0)


@dataclass(frozen=True)
class SimSpeed:
    nodes: int
    rate: float
    simulated_s: float
    wall_s: float
    events: int
    committed_txs: int

    @property
    def speedup(self) -> float:
        return self.simulated_s / self.wall_s

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s

    def as_json(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "rate_tx_per_s": self.rate,
            "seed": SEED,
            "simulated_s": self.simulated_s,
            "wall_s": self.wall_s,
            "speedup": round(self.speedup, 1),
            "events": self.events,
            "events_per_s": round(self.events_per_s),
            "committed_txs": self.committed_txs,
        }


def measure_sim_speed(nodes: int, rate: float, duration_s: float) -> SimSpeed:
    """One fault-free simulation of ``duration_s`` simulated seconds at ``rate`` tx/s."""
    scenario = Scenario(f"bench {nodes} nodes at {rate:g} tx/s", NetworkSpec(nodes), WorkloadSpec(rate, duration_s), ())
    report = run_simulation(scenario, SEED).report
    wall_s = max(float(report["wall_s"]), 1e-3)  # the report rounds to ms
    return SimSpeed(
        nodes, rate, float(report["simulated_s"]), wall_s, int(report["events"]), int(report["committed_txs"])
    )


def sim_json(runs: list[SimSpeed], command: str, host: dict[str, Any]) -> dict[str, Any]:
    judged = [run for run in runs if run.nodes == 4 and run.rate == SPEEDUP_TARGET_RATE]
    return {
        "command": command,
        "machine": host,
        "runs": [run.as_json() for run in runs],
        "target": {
            "speedup": f">= {SPEEDUP_TARGET:g}x real time for 4 nodes at {SPEEDUP_TARGET_RATE:g} tx/s",
            "met": judged[0].speedup >= SPEEDUP_TARGET if judged else None,
        },
    }


def sim_lines(runs: list[SimSpeed]) -> list[str]:
    lines = [f"{'nodes':>5}  {'tx/s':>7}  {'simulated s':>11}  {'wall s':>7}  {'speed-up':>8}  {'events/s':>9}"]
    for run in runs:
        lines.append(
            f"{run.nodes:>5}  {run.rate:>7g}  {run.simulated_s:>11.1f}  {run.wall_s:>7.2f}  "
            f"{run.speedup:>7.1f}x  {run.events_per_s:>9.0f}"
        )
    judged = [run for run in runs if run.nodes == 4 and run.rate == SPEEDUP_TARGET_RATE]
    for run in judged:
        verdict = "met" if run.speedup >= SPEEDUP_TARGET else "NOT met"
        lines.append(
            f"target 4 nodes at {SPEEDUP_TARGET_RATE:g} tx/s >= {SPEEDUP_TARGET:g}x real time: "
            f"{run.speedup:.1f}x, {verdict}"
        )
    if not judged:
        lines.append(f"target not judged: it is for 4 nodes at {SPEEDUP_TARGET_RATE:g} tx/s")
    return lines
