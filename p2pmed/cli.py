"""The ``p2pmed`` command."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from p2pmed import demo as demo_module

EXIT_VIOLATION = 1
EXIT_BAD_INPUT = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="p2pmed")
def cli() -> None:
    """p2pmed: a peer-to-peer network for sharing healthcare data between organisations."""


@cli.command()
@click.option("--home", type=click.Path(path_type=Path), required=True, help="Directory for the node's key, config and data.")
@click.option("--moniker", default="node", show_default=True, help="A name for this site, shown to its peers.")
@click.option("--listen", default="/ip4/0.0.0.0/tcp/26656", show_default=True, help="Multiaddr to listen on for peers.")
def init(home: Path, moniker: str, listen: str) -> None:
    """Create a node: its Ed25519 key (mode 0600) and a commented config.toml."""
    from p2pmed.home import HomeError, init_home

    try:
        key = init_home(home, moniker, listen)
    except HomeError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(f"created {home}: node key {key.public_key.hex()}; edit {home / 'config.toml'}, then add genesis.json")


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
              help="Directory for report.json and timeline.json.")
def sim_run(scenario: Path, seed: int, out: Path) -> None:
    """Run SCENARIO (a TOML file) once. Exit 0 when the checkers pass, 1 on a
    safety or liveness violation, 2 when the scenario file is bad."""
    from p2pmed.sim.report import summary_line, write_report
    from p2pmed.sim.scenario import ScenarioError
    from p2pmed.sim.scenario_file import load_scenario
    from p2pmed.sim.simulator import run_simulation

    try:
        loaded = load_scenario(scenario)
    except ScenarioError as error:
        click.echo(f"error: {scenario}: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    result = run_simulation(loaded, seed)
    path = write_report(result.report, out)
    click.echo(summary_line(result.report))
    for violation in result.report["safety"]["violations"]:
        click.echo(f"  safety violation at step {violation['step']} ({violation['time_s']} s), node {violation['node']}:"
                   f" {violation['kind']}: {violation['detail']}")
    if result.report["liveness"]["ok"] is False:
        click.echo(f"  liveness: {result.report['liveness']['detail']}")
    click.echo(f"report: {path}")
    if not result.ok:
        click.echo(f"replay: p2pmed sim run {scenario} --seed {seed} --out {out}")
        sys.exit(EXIT_VIOLATION)


@sim.command("sweep")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--seeds", "seed_range", default="1..20", show_default=True, help="Seeds A..B (inclusive) or one seed.")
@click.option("--jobs", type=int, default=None, help="Parallel processes [default: all cores].")
def sim_sweep(scenario: Path, seed_range: str, jobs: int | None) -> None:
    """Run SCENARIO on many seeds; print pass/fail, latency spread and a replay command per failure.
    Exit 0 when every seed passes, 1 otherwise, 2 on a bad scenario or seed range."""
    from p2pmed.sim.scenario import ScenarioError
    from p2pmed.sim.scenario_file import load_scenario
    from p2pmed.sim.sweep import parse_seed_range, summarise, sweep

    try:
        load_scenario(scenario)
        seeds = parse_seed_range(seed_range)
    except (ScenarioError, ValueError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    with click.progressbar(sweep(scenario, seeds, jobs), length=len(seeds), label="seeds", file=sys.stderr) as bar:
        outcomes = list(bar)
    for line in summarise(outcomes, lambda seed: f"p2pmed sim run {scenario} --seed {seed} --out sim-out/seed-{seed}"):
        click.echo(line)
    if not all(outcome.ok for outcome in outcomes):
        sys.exit(EXIT_VIOLATION)


def main() -> None:
    cli()
