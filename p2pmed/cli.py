"""The ``p2pmed`` command."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click

from p2pmed import demo as demo_module
from p2pmed.cli_audit import AUDIT_COMMANDS
from p2pmed.cli_client import CLIENT_COMMANDS
from p2pmed.cli_common import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_VIOLATION, HOME_OPTION, socket_of
from p2pmed.cli_identity import IDENTITY_COMMANDS
from p2pmed.cli_record import RECORD_COMMANDS
from p2pmed.cli_supply import SUPPLY_COMMANDS
from p2pmed.cli_trial import TRIAL_COMMANDS
from p2pmed.ledger.contracts.identity import ORGANISATION_KINDS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="p2pmed")
def cli() -> None:
    """p2pmed: a peer-to-peer network for sharing healthcare data between organisations."""


@cli.command()
@click.option("--home", type=click.Path(path_type=Path), required=True, help="Directory for the node's key, config and data.")
@click.option("--moniker", default="node", show_default=True, help="A name for this site, shown to its peers.")
@click.option("--listen", default="/ip4/0.0.0.0/tcp/26656", show_default=True, help="Multiaddr to listen on for peers.")
@click.option("--kind", type=click.Choice(sorted(ORGANISATION_KINDS)), default="hospital", show_default=True,
              help="What kind of organisation this site is.")
def init(home: Path, moniker: str, listen: str, kind: str) -> None:
    """Create a node: its Ed25519 and encryption keys (mode 0600) and a commented config.toml,
    and print the entry that the network's genesis.json needs for it."""
    from p2pmed.home import HomeError, init_home

    try:
        node = init_home(home, moniker, listen)
    except HomeError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    entry = {"moniker": moniker, "public_key": node.key.public_key.hex(), "address": "/ip4/<public IP>/tcp/<port>",
             "kind": kind, "encryption_key": node.encryption_key.public_key.key.hex()}
    click.echo(f"created {home}; edit {home / 'config.toml'}, then put the network's genesis.json there.")
    click.echo("this node's entry for the validators list of genesis.json (fill in the address others reach it at):")
    click.echo(json.dumps(entry, indent=2))


@cli.command()
@click.option("--nodes", type=int, default=4, show_default=True, help="How many validators (n = 3f+1 tolerates f faults).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Directory for the node homes.")
@click.option("--base-port", type=int, default=26656, show_default=True, help="Node i listens on 127.0.0.1:base+i.")
@click.option("--chain-id", default="p2pmed-testnet", show_default=True)
@click.option("--ip", "ips", multiple=True, metavar="IPV4",
              help="One per node, for nodes on separate hosts or containers: node i is reached at IPV4:base-port.")
def testnet(nodes: int, out: Path, base_port: int, chain_id: str, ips: tuple[str, ...]) -> None:
    """Create homes for a network of validators sharing one genesis (by default all on 127.0.0.1)."""
    from p2pmed.genesis import load_genesis
    from p2pmed.home import GENESIS, HomeError, create_testnet

    try:
        homes = create_testnet(out, nodes, base_port, chain_id, ips)
    except HomeError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    genesis = load_genesis(homes[0] / GENESIS)
    click.echo(f"created {len(homes)} homes in {out} for chain {chain_id} (genesis {genesis.hash.hex()[:16]}…)")


@cli.command()
@HOME_OPTION
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None,
              help="Overrides [log] level in config.toml.")
def node(home: Path, log_level: str | None) -> None:
    """Run the node in the foreground until SIGINT or SIGTERM. Exit 2 on a bad home, config,
    genesis or key file; 1 if it cannot run (port in use, unreadable store)."""
    import trio

    from p2pmed.crypto import KeyFileError
    from p2pmed.home import HomeError, load_home
    from p2pmed.input_error import KeyedInputError
    from p2pmed.logs import configure_logging
    from p2pmed.node import serve
    from p2pmed.rpc import RpcSocketInUse
    from p2pmed.store import StoreError

    try:
        loaded = load_home(home)
    except (KeyedInputError, KeyFileError, HomeError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    configure_logging(loaded.config.log_format, log_level or loaded.config.log_level)
    try:
        trio.run(serve, loaded)
    except* (StoreError, OSError, RpcSocketInUse) as group:  # trio may wrap them in an exception group
        for error in group.exceptions:
            click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILURE)


@cli.command()
@HOME_OPTION
@click.option("--count", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Transactions per second to offer (open loop) [default: as fast as the node takes them].")
@click.option("--wait/--no-wait", default=False, help="Wait until they are committed and print tx/s and latency.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for commits.")
def load(home: Path, count: int, rate: float | None, wait: bool, timeout: float) -> None:
    """Submit COUNT signed sample transactions (load.probe: they change nothing but a nonce) through this node."""
    from p2pmed.load import run_load
    from p2pmed.rpc.client import NodeNotRunning, RpcError

    try:
        report = run_load(socket_of(home), count, rate, wait, timeout)
    except (NodeNotRunning, RpcError, OSError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILURE)
    for line in report.lines():
        click.echo(line)
    if wait and report.committed < report.submitted:
        click.echo(f"error: {report.submitted - report.committed} transactions not committed within {timeout} s", err=True)
        sys.exit(EXIT_FAILURE)


@cli.command()
@click.option("--nodes", type=click.IntRange(1, 16), default=4, show_default=True, help="Node processes to start.")
@click.option("--rates", default="auto", show_default=True,
              help="Offered tx/s per step, comma-separated (50,100,200), or auto: double from 50 until saturation, "
                   "at most 10 steps. With --sim: the simulated rates (auto: 100,1000).")
@click.option("--duration", type=click.FloatRange(0, 600, min_open=True), default=10.0, show_default=True,
              help="Seconds of load per step (with --sim: simulated seconds per run).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("bench-out"), show_default=True,
              help="Directory for bench.json, bench.png and the nodes' logs (with --sim: sim.json).")
@click.option("--sim", "sim_only", is_flag=True, help="Measure the simulator's speed against real time instead.")
def bench(nodes: int, rates: str, duration: float, out: Path, sim_only: bool) -> None:
    """Throughput and latency of real node processes on 127.0.0.1 under open-loop load, against
    this machine's signature limit; prints a table and writes bench.json and bench.png (benchmarks/README.md).
    Exit 0 whether or not the targets are met, 1 if the network fails, 2 on a bad option."""
    from p2pmed.bench.plan import parse_rates
    from p2pmed.bench.run import run_bench, run_sim_bench
    from p2pmed.process_network import NodeFailed

    try:
        parsed = parse_rates(rates)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--rates'") from None
    command = f"p2pmed bench --nodes {nodes} --rates {rates} --duration {duration:g} --out {out}"
    command += " --sim" if sim_only else ""
    try:
        (run_sim_bench if sim_only else run_bench)(nodes, parsed, duration, out, command, click.echo)
    except (NodeFailed, OSError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILURE)


@cli.command()
def demo() -> None:
    """Run the end-to-end demo of what p2pmed does today."""
    demo_module.run(click.echo)


@cli.group()
def sim() -> None:
    """Deterministic fault-injection simulations of the PBFT network."""


@sim.command("run")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=1, show_default=True, help="Seed for every random choice; replays exactly.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("sim-out"), show_default=True,
              help="Directory for report.json, timeline.json and the plot.")
@click.option("--mode", type=click.Choice(["sim", "real"]), default="sim", show_default=True,
              help="sim: the deterministic simulator; real: node processes on 127.0.0.1 with real faults.")
@click.option("--rate", type=click.FloatRange(0, 100_000, min_open=True), default=None,
              help="Transactions per second instead of the scenario's (real processes on a small machine carry far less).")
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
@click.option("--out", type=click.Path(path_type=Path), default=Path("sim-out"), show_default=True,
              help="Directory for shrunk scenarios (shrunk-seed-N.toml); the replay commands write under it.")
@click.option("--shrink/--no-shrink", "shrink_failures_on", default=True, show_default=True,
              help="Shrink the first 5 failures to smaller scenarios that fail the same way (at most 40 runs each).")
def sim_sweep(scenario: Path, seed_range: str, jobs: int | None, out: Path, shrink_failures_on: bool) -> None:
    """Run SCENARIO on many seeds; print pass/fail, latency spread and a replay command per failure,
    and the replay command of each shrunk failure. Exit 0 when every seed passes, 1 otherwise,
    2 on a bad scenario or seed range."""
    from p2pmed.sim.planted import WEAK_QUORUM_ENV, planted_quorum, replay_prefix
    from p2pmed.sim.scenario import ScenarioError
    from p2pmed.sim.scenario_file import load_scenario
    from p2pmed.sim.sweep import SHRINK_FAILURES_MAX, parse_seed_range, shrink_failures, summarise, sweep, write_shrunk

    try:
        loaded = load_scenario(scenario)
        seeds = parse_seed_range(seed_range)
    except (ScenarioError, ValueError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    quorum_override, prefix = planted_quorum(loaded.network.nodes), replay_prefix()
    if quorum_override is not None:
        click.echo(f"warning: {WEAK_QUORUM_ENV}=1 plants a bug (a quorum of {quorum_override}); expect failures", err=True)
    with click.progressbar(sweep(scenario, seeds, jobs, quorum_override), length=len(seeds), label="seeds", file=sys.stderr) as bar:
        outcomes = list(bar)
    failed = [outcome.seed for outcome in outcomes if not outcome.ok]
    notes: dict[int, list[str]] = {}
    if shrink_failures_on and failed:
        chosen = failed[:SHRINK_FAILURES_MAX]
        shrinking = shrink_failures(scenario, chosen, jobs, quorum_override)
        with click.progressbar(shrinking, length=len(chosen), label="shrinking", file=sys.stderr) as bar:
            for shrunk in bar:
                path = write_shrunk(shrunk, scenario, out)
                notes[shrunk.seed] = [
                    f"  shrunk: {shrunk.summary()}",
                    f"  replay shrunk: {prefix}p2pmed sim run {path} --seed {shrunk.seed} --out {out}/shrunk-seed-{shrunk.seed}",
                ]
        for seed in failed[SHRINK_FAILURES_MAX:]:
            notes[seed] = [f"  not shrunk: only the first {SHRINK_FAILURES_MAX} failures are"]
    def replay(seed: int) -> str:
        return f"{prefix}p2pmed sim run {scenario} --seed {seed} --out {out}/seed-{seed}"

    for line in summarise(outcomes, replay, notes):
        click.echo(line)
    if failed:
        sys.exit(EXIT_VIOLATION)


for command in (*CLIENT_COMMANDS, *IDENTITY_COMMANDS, *AUDIT_COMMANDS, *TRIAL_COMMANDS, *SUPPLY_COMMANDS, *RECORD_COMMANDS):
    cli.add_command(command)


def main() -> None:
    cli()
