"""``p2pmed load`` and ``bench``: offer load to a node, measure a network."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from p2pmed.cli.common import EXIT_FAILURE, HOME_OPTION, socket_of

__all__ = ["BENCH_COMMANDS"]


@click.command()
@HOME_OPTION
@click.option("--count", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Transactions per second to offer (open loop) [default: as fast as the node takes them].",
)
@click.option("--wait/--no-wait", default=False, help="Wait until they are committed and print tx/s and latency.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for commits.")
def load(home: Path, count: int, rate: float | None, wait: bool, timeout: float) -> None:
    """Submit COUNT signed sample transactions (load.probe: they change nothing but a nonce) through this node."""
    from p2pmed.client.load import run_load
    from p2pmed.rpc.client import NodeNotRunning, RpcError

    try:
        report = run_load(socket_of(home), count, rate, wait, timeout)
    except (NodeNotRunning, RpcError, OSError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILURE)
    for line in report.lines():
        click.echo(line)
    if wait and report.committed < report.submitted:
        click.echo(
            f"error: {report.submitted - report.committed} transactions not committed within {timeout} s", err=True
        )
        sys.exit(EXIT_FAILURE)


@click.command()
@click.option("--nodes", type=click.IntRange(1, 16), default=4, show_default=True, help="Node processes to start.")
@click.option(
    "--rates",
    default="auto",
    show_default=True,
    help="Offered tx/s per step, comma-separated (50,100,200), or auto: double from 50 until saturation, "
    "at most 10 steps. With --sim: the simulated rates (auto: 100,1000).",
)
@click.option(
    "--duration",
    type=click.FloatRange(0, 600, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds of load per step (with --sim: simulated seconds per run).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("bench-out"),
    show_default=True,
    help="Directory for bench.json, bench.png and the nodes' logs (with --sim: sim.json).",
)
@click.option(
    "--resend-after-ms",
    type=click.IntRange(1, 60_000),
    default=None,
    help="Resend a transaction refused as mempool-full this long after, doubling after each further refusal "
    "(up to 64x), as a real client would (default: open loop: a refused transaction is lost and its "
    "sender's later ones wait behind it).",
)
@click.option("--sim", "sim_only", is_flag=True, help="Measure the simulator's speed against real time instead.")
def bench(nodes: int, rates: str, duration: float, out: Path, resend_after_ms: int | None, sim_only: bool) -> None:
    """Throughput and latency of real node processes on 127.0.0.1 under open-loop load, against
    this machine's signature limit; prints a table and writes bench.json and bench.png (benchmarks/README.md).
    Exit 0 whether or not the targets are met, 1 if the network fails, 2 on a bad option."""
    from p2pmed.bench.plan import parse_rates

    try:
        from p2pmed.bench.run import run_bench, run_sim_bench
    except ModuleNotFoundError as missing:
        if (missing.name or "").partition(".")[0] != "matplotlib":
            raise
        click.echo("error: p2pmed bench draws bench.png with matplotlib: pip install 'p2pmed[plots]'", err=True)
        sys.exit(EXIT_FAILURE)
    from p2pmed.testing.process_network import NodeFailed

    try:
        parsed = parse_rates(rates)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'--rates'") from None
    command = f"p2pmed bench --nodes {nodes} --rates {rates} --duration {duration:g} --out {out}"
    command += " --sim" if sim_only else ""
    if resend_after_ms is not None:
        if sim_only:
            raise click.BadParameter("the simulator has no client to resend", param_hint="'--resend-after-ms'")
        command += f" --resend-after-ms {resend_after_ms}"
    try:
        if sim_only:
            run_sim_bench(nodes, parsed, duration, out, command, click.echo)
        else:
            run_bench(nodes, parsed, duration, out, command, click.echo, resend_after_ms)
    except (NodeFailed, OSError) as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_FAILURE)


BENCH_COMMANDS = [load, bench]
