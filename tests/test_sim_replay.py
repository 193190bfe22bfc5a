"""A seed replays exactly across versions of the simulator, not only within one.

The traces below were recorded when backups began to forward their oldest transactions
to the primary before suspecting it (a new consensus message; the fault-free bench trace
is unchanged, and the scenarios with faults commit the same transactions with fewer
view changes). Each speed-up must keep every delivery, tick, commit and block hash in
place, so that a seed reported as failing yesterday still fails the same way today. A
change that alters what is simulated on purpose (the workload, the fault model, the
consensus messages) records them anew and says so in its commit message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from p2pmed.sim.scenario import NetworkSpec, Scenario, WorkloadSpec
from p2pmed.sim.scenario_file import load_scenario
from p2pmed.sim.simulator import run_simulation

SIMULATIONS = Path(__file__).resolve().parent.parent / "simulations"
NOT_REPLAYED = {"wall_s", "speedup", "events"}
"""How long the run took, and how many queue entries it used to simulate the same trace."""

RECORDED = [
    ("clock_skew", 1, "cdcb2c7d08c728ec64ff07b7362ce94a797f82dad44badb19547c9f9276bc959", 3000, 3),
    ("crash_primary", 1, "d357b3f595b20e242393020ff9cb6ea0da969e2feea8fa33850bde79343babdb", 3000, 1),
    ("f_plus_one_crash", 2, "4983f1b422a7db605ba0259ebf95d2b8081d63242b3ca2a966ace46a1ccd05ed", 3000, 1),
    ("flaky_network", 1, "91d1cd4d74861533bc7bb4864198d49b823289c2e122892b1e24d852754a6f7c", 3000, 1),
    ("lossy_reordering", 2, "07f6c34ea7e71f7f23e222e8aadb37af5cb9f10df2652c056acc6616e952b56c", 3000, 0),
    ("partition", 1, "cef27c628c3a209d045142bd26f6cc9c2c4f8d6c9a38f2c8abb60ffc4ee191e2", 3000, 1),
    ("twins", 1, "d67de6eee6689711d8b7d4d1f69fe96c890680e8debe9abafcfbe9f2196eae87", 3000, 0),
    ("byzantine_primary", 2, "91b19dd30fe593b711a3cd09174f70c59e30750991e2975d182e90a1259fbda9", 3000, 0),
    ("epoch_remove_primary", 1, "7677370c25a6f5d8b0944535494fe63191d3ba3ab796e99413019da428712921", 3000, 0),
    ("bad_checkpoint", 1, "7f0793bc5a154fed164ac2485491d138505dc338c324679c18e4af1ab7a47443", 3000, 0),
]
BENCH = Scenario("bench 4 nodes at 100 tx/s", NetworkSpec(4), WorkloadSpec(100.0, 30.0), ())
BENCH_TRACE = "0b9b5b576809ef5818c1950e4cd36962ae839b960f8eeb17792c139b8d90f018"


def _replayed(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key not in NOT_REPLAYED}


@pytest.mark.parametrize(("name", "seed", "trace", "committed", "view_changes"), RECORDED)
def test_a_shipped_scenario_replays_its_recorded_trace(
    name: str, seed: int, trace: str, committed: int, view_changes: int
) -> None:
    report = run_simulation(load_scenario(SIMULATIONS / f"{name}.toml"), seed).report
    assert (report["trace_sha256"], report["committed_txs"], report["view_changes"]) == (trace, committed, view_changes)
    assert report["safety"]["ok"] and report["liveness"]["ok"] is not False


def test_the_benchmarked_run_replays_its_recorded_trace_and_the_same_report_twice() -> None:
    first = run_simulation(BENCH, 1).report
    assert first["trace_sha256"] == BENCH_TRACE and first["committed_txs"] == 3000
    assert _replayed(run_simulation(BENCH, 1).report) == _replayed(first)
