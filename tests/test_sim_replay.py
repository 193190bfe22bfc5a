"""A seed replays exactly across versions of the simulator, not only within one.

The traces below were recorded before the simulator and the codec were made faster
(commit 954fe4a). Each speed-up must keep every delivery, tick, commit and block hash in
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
    ("clock_skew", 1, "069061dc9c49e3a43d0d006ae3300737bd9fc56ba916e6f4f99ea18423aedf04", 3000, 3),
    ("crash_primary", 1, "0ed5b3ef06ca76f37e32d36e711d9a797f6b5fdd099edab188e659b3132398f9", 3000, 1),
    ("f_plus_one_crash", 2, "bc9c5f6f33b1f7dd76db5ccde8046f5860ac140778c77d7bd24437fc83fa2286", 3000, 1),
    ("flaky_network", 1, "f4f788e23452c3da9c017097b9aed17996a41f5ab5a34c492f717c47aea7f996", 3000, 2),
    ("lossy_reordering", 2, "d00abd222cd5ba7abfe460a377aaf8f2d9a67ce5e23c4b7c988b6e5da5b79b48", 3000, 5),
    ("partition", 1, "e383bb7d77511093ea71368836811cfe7c91ad994ece54eba9b3b9c793ed0a30", 3000, 1),
    ("twins", 1, "1e1cfb0e80ffe6a47c6cb262ca687714a919c791b97a6cdd5df5b4acb7db57d7", 3000, 1),
    ("byzantine_primary", 2, "91b19dd30fe593b711a3cd09174f70c59e30750991e2975d182e90a1259fbda9", 3000, 0),
    ("epoch_remove_primary", 1, "7677370c25a6f5d8b0944535494fe63191d3ba3ab796e99413019da428712921", 3000, 0),
    ("bad_checkpoint", 1, "7f0793bc5a154fed164ac2485491d138505dc338c324679c18e4af1ab7a47443", 3000, 0),
]
BENCH = Scenario("bench 4 nodes at 100 tx/s", NetworkSpec(4), WorkloadSpec(100.0, 30.0), ())
BENCH_TRACE = "0b9b5b576809ef5818c1950e4cd36962ae839b960f8eeb17792c139b8d90f018"


def _replayed(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if key not in NOT_REPLAYED}


@pytest.mark.parametrize(("name", "seed", "trace", "committed", "view_changes"), RECORDED)
def test_a_shipped_scenario_replays_the_trace_recorded_before_the_speed_ups(
    name: str, seed: int, trace: str, committed: int, view_changes: int
) -> None:
    report = run_simulation(load_scenario(SIMULATIONS / f"{name}.toml"), seed).report
    assert (report["trace_sha256"], report["committed_txs"], report["view_changes"]) == (trace, committed, view_changes)
    assert report["safety"]["ok"] and report["liveness"]["ok"] is not False


def test_the_benchmarked_run_replays_its_recorded_trace_and_the_same_report_twice() -> None:
    first = run_simulation(BENCH, 1).report
    assert first["trace_sha256"] == BENCH_TRACE and first["committed_txs"] == 3000
    assert _replayed(run_simulation(BENCH, 1).report) == _replayed(first)
