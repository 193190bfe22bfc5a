"""The two ``p2pmed bench`` runs, end to end: measure, print as it goes, write the files.

Kept apart from the command so that the command only checks its options and
maps failures to exit codes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from p2pmed.bench.limit import measure_signature_limit
from p2pmed.bench.network import run_network_bench
from p2pmed.bench.plot import write_plot
from p2pmed.bench.report import bench_json, machine, summary_lines, table_header, table_row, write_json
from p2pmed.bench.sim_speed import DEFAULT_RATES, measure_sim_speed, sim_json, sim_lines

__all__ = ["run_bench", "run_sim_bench"]


def run_bench(
    nodes: int,
    rates: tuple[float, ...] | None,
    duration_s: float,
    out: Path,
    command: str,
    echo: Callable[[str], None],
    resend_after_ms: int | None = None,
) -> dict[str, object]:
    """The real-network benchmark; writes ``out/bench.json``, ``out/bench.png`` and ``out/logs/``. Returns the JSON."""
    host = machine()
    echo(f"{host['cores']} cores ({host['cpu_model']}), load average {host['load_average_at_start']}")
    limit = measure_signature_limit(nodes)  # first, while our own nodes do not compete for the cores
    echo(f"signature limit: {limit.tx_per_s:.0f} tx/s; starting {nodes} nodes")
    for line in table_header(nodes):
        echo(line)
    bench = run_network_bench(
        nodes, rates, duration_s, out / "logs", lambda step: echo(table_row(step)), resend_after_ms
    )
    data = bench_json(bench, limit, command, host)
    json_path = write_json(data, out / "bench.json")
    title = f"{nodes} nodes, {host['cores']} cores: latency vs committed throughput"
    png_path = write_plot(
        [*bench.steps, *([bench.half_rate] if bench.half_rate else [])], limit.tx_per_s, title, out / "bench.png"
    )
    for line in summary_lines(data):
        echo(line)
    echo(f"wrote {json_path} and {png_path}")
    return data


def run_sim_bench(
    nodes: int,
    rates: tuple[float, ...] | None,
    duration_s: float,
    out: Path,
    command: str,
    echo: Callable[[str], None],
) -> dict[str, object]:
    """The simulator's speed at each rate (None: ``DEFAULT_RATES``); writes ``out/sim.json``. Returns the JSON."""
    host = machine()
    runs = [measure_sim_speed(nodes, rate, duration_s) for rate in rates or DEFAULT_RATES]
    for line in sim_lines(runs):
        echo(line)
    data = sim_json(runs, command, host)
    echo(f"wrote {write_json(data, out / 'sim.json')}")
    return data
