"""``p2pmed sim``: deterministic fault-injection simulations, one run or a sweep of seeds."""

from __future__ import annotations

import dataclasses
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, EXIT_VIOLATION

if TYPE_CHECKING:
    from p2pmed.sim.cluster import ClusterPool
    from p2pmed.sim.sweep import SeedOutcome

__all__ = ["SIM_COMMANDS"]


@click.group()
def sim() -> None:
    """Deterministic fault-injection simulations of the PBFT network."""


@sim.command("run")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=1, show_default=True, help="Seed for every random choice; replays exactly.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("sim-out"),
    show_default=True,
    help="Directory for report.json, timeline.json and the plot.",
)
@click.option(
    "--mode",
    type=click.Choice(["sim", "real"]),
    default="sim",
    show_default=True,
    help="sim: the deterministic simulator; real: node processes on 127.0.0.1 with real faults.",
)
@click.option(
    "--rate",
    type=click.FloatRange(0, 100_000, min_open=True),
    default=None,
    help="Transactions per second instead of the scenario's (real processes on a small machine carry far less).",
)
def sim_run(scenario: Path, seed: int, out: Path, mode: str, rate: float | None) -> None:
    """Run SCENARIO (a TOML file) once. Exit 0 when the checkers pass, 1 on a
    safety or liveness violation, 2 when the scenario file is bad (or asks real
    processes for something only the simulator does)."""
    from p2pmed.sim.report import summary_line, write_report
    from p2pmed.sim.scenario import ScenarioError
    from p2pmed.sim.scenario_file import load_scenario

    try:
        loaded = load_scenario(scenario)
        if rate is not None:
            loaded = dataclasses.replace(loaded, workload=dataclasses.replace(loaded.workload, rate=rate))
        if mode == "real":
            from p2pmed.sim.real import check_playable

            check_playable(loaded)
    except ScenarioError as error:
        click.echo(f"error: {scenario}: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    if mode == "real":
        from p2pmed.sim.real import run_real

        with click.progressbar(length=1000, label=f"{loaded.name} on real processes", file=sys.stderr) as bar:
            report = run_real(loaded, seed, out / "logs", lambda done: bar.update(int(done * 1000) - bar.pos))
    else:
        from p2pmed.sim.simulator import run_simulation

        with click.progressbar(length=1000, label=f"{loaded.name}, seed {seed}", file=sys.stderr) as bar:
            report = run_simulation(loaded, seed, progress=lambda done: bar.update(int(done * 1000) - bar.pos)).report
    report["rate_override"] = rate
    path = write_report(report, out)
    click.echo(summary_line(report))
    for violation in report["safety"]["violations"]:
        where = f" at step {violation['step']} ({violation['time_s']} s)" if "step" in violation else ""
        click.echo(f"  safety violation{where}, node {violation['node']}: {violation['kind']}: {violation['detail']}")
    if report["liveness"]["ok"] is False:
        click.echo(f"  liveness: {report['liveness']['detail']}")
    click.echo(f"report: {path}")
    if not report["safety"]["ok"] or report["liveness"]["ok"] is False:
        options = (" --mode real" if mode == "real" else "") + (f" --rate {rate:g}" if rate is not None else "")
        from p2pmed.sim.planted import replay_prefix

        click.echo(f"replay: {replay_prefix()}p2pmed sim run {scenario} --seed {seed} --out {out}{options}")
        sys.exit(EXIT_VIOLATION)


@sim.command("sweep")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--seeds", "seed_range", default="1..20", show_default=True, help="Seeds A..B (inclusive) or one seed.")
@click.option("--jobs", type=int, default=None, help="Parallel processes [default: all cores].")
@click.option(
    "--cluster",
    "cluster_address",
    default=None,
    metavar="ADDRESS",
    help="Run the seeds on the Dask scheduler at ADDRESS (tcp://HOST:PORT, tls://HOST:PORT) instead of local "
    "processes; its workers need the same p2pmed (pip install 'p2pmed[cluster]').",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("sim-out"),
    show_default=True,
    help="Directory for shrunk scenarios (shrunk-seed-N.toml); the replay commands write under it.",
)
@click.option(
    "--shrink/--no-shrink",
    "shrink_failures_on",
    default=True,
    show_default=True,
    help="Shrink the first 5 failures to smaller scenarios that fail the same way (at most 40 runs each).",
)
def sim_sweep(
    scenario: Path, seed_range: str, jobs: int | None, cluster_address: str | None, out: Path, shrink_failures_on: bool
) -> None:
    """Run SCENARIO on many seeds; print pass/fail, latency spread and a replay command per failure,
    and the replay command of each shrunk failure. Exit 0 when every seed passes, 1 otherwise,
    2 on a bad scenario, seed range or cluster address, or a cluster that cannot run the sweep."""
    from p2pmed.sim.cluster import ClusterError, connect, parse_address
    from p2pmed.sim.planted import WEAK_QUORUM_ENV, planted_quorum, replay_prefix
    from p2pmed.sim.scenario import ScenarioError
    from p2pmed.sim.scenario_file import load_scenario
    from p2pmed.sim.sweep import parse_seed_range, summarise

    try:
        loaded = load_scenario(scenario)
        seeds = parse_seed_range(seed_range)
        address = parse_address(cluster_address) if cluster_address is not None else None
    except (ScenarioError, ValueError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    quorum_override = planted_quorum(loaded.network.nodes)
    if quorum_override is not None:
        click.echo(
            f"warning: {WEAK_QUORUM_ENV}=1 plants a bug (a quorum of {quorum_override}); expect failures", err=True
        )
    try:
        with connect(address, quorum_override is not None) if address else nullcontext() as cluster:
            outcomes, notes = _sweep_and_shrink(
                scenario, seeds, jobs, cluster, out, shrink_failures_on, quorum_override
            )
    except ClusterError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    prefix = replay_prefix()

    def replay(seed: int) -> str:
        return f"{prefix}p2pmed sim run {scenario} --seed {seed} --out {out}/seed-{seed}"

    for line in summarise(outcomes, replay, notes):
        click.echo(line)
    if any(not outcome.ok for outcome in outcomes):
        sys.exit(EXIT_VIOLATION)


def _sweep_and_shrink(
    scenario: Path,
    seeds: range,
    jobs: int | None,
    cluster: ClusterPool | None,
    out: Path,
    shrink_failures_on: bool,
    quorum_override: int | None,
) -> tuple[list[SeedOutcome], dict[int, list[str]]]:
    """Every seed's outcome, and the lines to print under each failure (its shrunk replay)."""
    from p2pmed.sim.planted import replay_prefix
    from p2pmed.sim.sweep import SHRINK_FAILURES_MAX, shrink_failures, sweep, write_shrunk

    with click.progressbar(
        sweep(scenario, seeds, jobs, quorum_override, cluster), length=len(seeds), label="seeds", file=sys.stderr
    ) as bar:
        outcomes = list(bar)
    failed = [outcome.seed for outcome in outcomes if not outcome.ok]
    notes: dict[int, list[str]] = {}
    if shrink_failures_on and failed:
        chosen = failed[:SHRINK_FAILURES_MAX]
        shrinking = shrink_failures(scenario, chosen, jobs, quorum_override, cluster)
        with click.progressbar(shrinking, length=len(chosen), label="shrinking", file=sys.stderr) as shrink_bar:
            for shrunk in shrink_bar:
                path = write_shrunk(shrunk, scenario, out)
                notes[shrunk.seed] = [
                    f"  shrunk: {shrunk.summary()}",
                    f"  replay shrunk: {replay_prefix()}p2pmed sim run {path} --seed {shrunk.seed} --out "
                    f"{out}/shrunk-seed-{shrunk.seed}",
                ]
        for seed in failed[SHRINK_FAILURES_MAX:]:
            notes[seed] = [f"  not shrunk: only the first {SHRINK_FAILURES_MAX} failures are"]
    return outcomes, notes


SIM_COMMANDS = [sim]
