"""A seed replays exactly across versions of the simulator, not only within one.

The traces below were recorded when backups began to forward their oldest transactions
to the primary before suspecting it (a new consensus message), the primary began to
propose as soon as the block before is done (``batch_delay_ms`` 0, as the daemon now
runs), and a replica began to keep pre-prepares that overtake their view's NEW-VIEW.
Each speed-up must keep every delivery, tick, commit and block hash in place, so that a
seed reported as failing yesterday still fails the same way today. A change that alters
what is simulated on purpose (the workload, the fault model, the consensus messages)
records them anew and says so in its commit message.
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
    ("clock_skew", 1, "f80aa9e61c4c9cb184ddc510ae118afeaa86129f5ee10f5d8d64c7091b7444eb", 3000, 3),
    ("crash_primary", 1, "1d015086faff0cd5cc51345391c248a98e93a9e440e77b6a83758e0ef27601eb", 3000, 1),
    ("f_plus_one_crash", 2, "4508961f64460661771c27a87d8fed093ab32980f7f7d3db48f0db159978c35e", 3000, 1),
    ("flaky_network", 1, "26a7d6c0063228808714b26cc24212706bea6b1e2da63d97ee5ffbccf849c8a8", 3000, 0),
    ("lossy_reordering", 2, "bb61f7e2b95d9a386221714c0580b31861361747a19131e02158dc223e2b5c32", 3000, 1),
    ("partition", 1, "36e7f99af882e7244ac2fe3655a7c890907fe31c0fc3637a7fa0fa9ce9205667", 3000, 1),
    ("twins", 1, "e730ab574b8b029b3b0a2cfa0443dfb1032daa89a1d1f30266af61816ae2b3cd", 3000, 0),
    ("byzantine_primary", 2, "63aaf9f64a631a28f3fc80619c5479ba3eb960f292a557528a7e287850314571", 3000, 0),
    ("epoch_remove_primary", 1, "4c6570c87308353c43956b1db502e958614e0edc2f00ba74eed2a9b60b20a234", 3000, 0),
    ("bad_checkpoint", 1, "b4786330cd3b19fd5a64079b6dabda22c1faff8c5c16fadfed45d9be33676592", 3000, 0),
]
BENCH = Scenario("bench 4 nodes at 100 tx/s", NetworkSpec(4), WorkloadSpec(100.0, 30.0), ())
BENCH_TRACE = "ad76c0b6e7587b5e37bebb60821a9144c1407e79e5a2b5d4d7c2496aa4df9dcf"


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
