"""Shrinking failures, and the planted-bug research control: a sweep finds the bug, shrinks it, and
the printed command replays the shrunk failure."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2pmed.cli.main import cli
from p2pmed.sim.planted import WEAK_QUORUM_ENV
from p2pmed.sim.scenario import Fault, FaultKind, NetworkSpec, Scenario, WorkloadSpec
from p2pmed.sim.scenario_file import dump_scenario, load_scenario
from p2pmed.sim.shrink import failure_signature, shrink
from p2pmed.sim.simulator import run_simulation

WEAK_QUORUM = 2  # f + 1 for four nodes, instead of 2f + 1 = 3

# A partition lets two halves of four each reach a weakened quorum of two: a fork. The
# crash, restart, clock skew and loss around it are noise a shrinker should remove.
NOISY = Scenario(
    "noisy-split",
    NetworkSpec(4, (5, 50), drop=0.02),
    WorkloadSpec(rate=10.0, duration_s=12.0),
    (
        Fault(1.0, FaultKind.CRASH, node=1),
        Fault(2.0, FaultKind.RESTART, node=1),
        Fault(3.0, FaultKind.CLOCK_SKEW, node=3, skew_ms=400),
        Fault(4.0, FaultKind.PARTITION, groups=((0, 1), (2, 3))),
        Fault(10.0, FaultKind.HEAL),
        Fault(11.0, FaultKind.DROP, probability=0.05),
    ),
    liveness_bound_s=20.0,
)


def test_shrinking_keeps_the_failure_and_removes_the_noise() -> None:
    shrunk = shrink(NOISY, 1, quorum_override=WEAK_QUORUM)
    assert shrunk.failure == "safety: agreement"
    assert [fault.kind for fault in shrunk.scenario.faults] == [FaultKind.PARTITION]
    assert shrunk.scenario.workload.duration_s < NOISY.workload.duration_s
    assert shrunk.scenario.workload.rate < NOISY.workload.rate
    assert shrunk.scenario.network.drop == 0.0
    replayed = run_simulation(shrunk.scenario, 1, quorum_override=WEAK_QUORUM).report
    assert failure_signature(replayed) == "safety: agreement"
    assert shrunk.summary().startswith("6 faults -> 1, 12 s -> ")


def test_shrinking_is_deterministic_and_keeps_to_its_run_budget() -> None:
    first = shrink(NOISY, 2, quorum_override=WEAK_QUORUM, runs_max=7)
    second = shrink(NOISY, 2, quorum_override=WEAK_QUORUM, runs_max=7)
    assert first == second and first.runs == 7
    assert len(first.scenario.faults) < len(NOISY.faults) or first.scenario.workload != NOISY.workload


def test_shrinking_refuses_a_scenario_that_passes() -> None:
    with pytest.raises(ValueError, match="passes with seed 1"):
        shrink(NOISY, 1)


def test_a_liveness_failure_only_shrinks_to_liveness_failures() -> None:
    # Nothing commits with a quorum no four replicas can reach: a liveness failure, never a safety one.
    stuck = Scenario(
        "stuck",
        NetworkSpec(4),
        WorkloadSpec(5.0, 6.0),
        (Fault(1.0, FaultKind.CRASH, node=3), Fault(2.0, FaultKind.RESTART, node=3)),
        5.0,
    )
    shrunk = shrink(stuck, 1, quorum_override=5)
    assert shrunk.failure == "liveness" and shrunk.scenario.faults == ()
    assert failure_signature(run_simulation(shrunk.scenario, 1, quorum_override=5).report) == "liveness"


# -- the planted bug, end to end through the command line ------------------------------


def test_a_sweep_with_the_planted_bug_finds_it_shrinks_it_and_the_printed_command_replays_it(tmp_path: Path) -> None:
    scenario = tmp_path / "noisy.toml"
    scenario.write_text(dump_scenario(NOISY))
    out = tmp_path / "out"
    planted = {WEAK_QUORUM_ENV: "1"}
    runner = CliRunner()
    swept = runner.invoke(
        cli, ["sim", "sweep", str(scenario), "--seeds", "1..3", "--jobs", "2", "--out", str(out)], env=planted
    )
    assert swept.exit_code == 1, swept.output
    assert "0/3 seeds passed" in swept.output and "safety: agreement" in swept.output
    assert f"replay: {WEAK_QUORUM_ENV}=1 p2pmed sim run {scenario} --seed 1" in swept.output

    commands = re.findall(r"replay shrunk: (.+)", swept.output)
    assert len(commands) == 3
    env_assignment, program, *arguments = shlex.split(commands[0])
    assert env_assignment == f"{WEAK_QUORUM_ENV}=1" and program == "p2pmed"
    shrunk_path = Path(arguments[2])
    assert shrunk_path == out / "shrunk-seed-1.toml"
    shrunk = load_scenario(shrunk_path)
    assert len(shrunk.faults) < len(NOISY.faults) or shrunk.workload.duration_s < NOISY.workload.duration_s

    replayed = runner.invoke(cli, arguments, env=planted)
    assert replayed.exit_code == 1, replayed.output
    assert "agreement" in replayed.output and "PLANTED BUG" in replayed.output
    markdown = (Path(arguments[-1]) / "report.md").read_text()
    assert "**Planted bug: quorum of 2 votes (planted).**" in markdown and "**Outcome: FAIL**" in markdown
    assert f"`{WEAK_QUORUM_ENV}=1 p2pmed sim run SCENARIO.toml --seed 1`" in markdown
    assert runner.invoke(cli, arguments, env={WEAK_QUORUM_ENV: None}).exit_code == 0, "no bug planted, no failure"


def test_no_shrink_leaves_failures_unshrunk(tmp_path: Path) -> None:
    scenario = tmp_path / "split.toml"
    scenario.write_text(
        dump_scenario(
            Scenario(
                "split",
                NetworkSpec(4),
                WorkloadSpec(5.0, 4.0),
                (Fault(1.0, FaultKind.PARTITION, groups=((0, 1), (2, 3))),),
            )
        )
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["sim", "sweep", str(scenario), "--seeds", "1", "--out", str(out), "--no-shrink"],
        env={WEAK_QUORUM_ENV: "1"},
    )
    assert result.exit_code == 1 and "seed 1 FAILED" in result.output
    assert "shrunk" not in result.output and not out.exists()
