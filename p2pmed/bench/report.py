"""What a benchmark run reports: the machine, bench.json, the targets and the printed table.

The targets are the issue's: the best committed rate is at least
``THROUGHPUT_TARGET_FRACTION`` of the signature limit measured in the same run,
and at half that rate p50 < ``LATENCY_P50_TARGET_MS`` and p99 <
``LATENCY_P99_TARGET_MS``. They are judged and printed, never asserted: the
command exits 0 whether or not they are met.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

from p2pmed.bench.limit import SignatureLimit, usable_cores
from p2pmed.bench.network import NetworkBench
from p2pmed.bench.step import StepResult

__all__ = [
    "LATENCY_P50_TARGET_MS",
    "LATENCY_P99_TARGET_MS",
    "THROUGHPUT_TARGET_FRACTION",
    "bench_json",
    "machine",
    "repeat_spread",
    "summary_lines",
    "table_header",
    "table_row",
    "targets",
    "write_json",
]

THROUGHPUT_TARGET_FRACTION = 0.70
LATENCY_P50_TARGET_MS = 50.0
LATENCY_P99_TARGET_MS = 250.0


def machine() -> dict[str, Any]:
    """What the figures depend on; taken when the run starts (the load average says how busy it was)."""
    return {
        "cores": usable_cores(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "libp2p": importlib.metadata.version("libp2p"),
        "cryptography": importlib.metadata.version("cryptography"),
        "p2pmed": importlib.metadata.version("p2pmed"),
        "platform": platform.platform(),
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if name.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def targets(bench: NetworkBench, limit: SignatureLimit) -> dict[str, Any]:
    best = bench.best
    best_rate = best.committed_per_s if best is not None else 0.0
    ratio = best_rate / limit.tx_per_s
    half = bench.half_rate
    p50 = half.latency_ms["p50"] if half is not None else None
    p99 = half.latency_ms["p99"] if half is not None else None
    return {
        "best_committed_tx_per_s": round(best_rate, 2),
        "signature_limit_tx_per_s": round(limit.tx_per_s, 1),
        "ratio_to_limit": round(ratio, 4),
        "throughput": {
            "target": f"best committed tx/s >= {THROUGHPUT_TARGET_FRACTION:.0%} of the signature limit",
            "met": ratio >= THROUGHPUT_TARGET_FRACTION,
        },
        "latency_at_half_rate": {
            "target": f"at half the best committed rate: p50 < {LATENCY_P50_TARGET_MS:g} ms, "
            f"p99 < {LATENCY_P99_TARGET_MS:g} ms",
            "rate_tx_per_s": None if half is None else round(half.rate, 2),
            "p50_ms": p50,
            "p99_ms": p99,
            "met": p50 is not None and p99 is not None and p50 < LATENCY_P50_TARGET_MS and p99 < LATENCY_P99_TARGET_MS,
        },
    }


def repeat_spread(steps: list[StepResult]) -> dict[str, Any] | None:
    """How much runs at one rate differ: the rate run most often (twice at least), with the
    least, median and most it committed and their range over the median."""
    runs: dict[float, list[float]] = {}
    for step in steps:
        runs.setdefault(step.rate, []).append(step.committed_per_s)
    rate, committed = max(runs.items(), key=lambda item: (len(item[1]), item[0]), default=(0.0, []))
    if len(committed) < 2:
        return None
    median = statistics.median(committed)
    return {
        "rate_tx_per_s": round(rate, 2),
        "runs": len(committed),
        "committed_tx_per_s": {
            "min": round(min(committed), 2),
            "median": round(median, 2),
            "max": round(max(committed), 2),
        },
        "range_over_median": round((max(committed) - min(committed)) / median, 4) if median else None,
    }


def bench_json(bench: NetworkBench, limit: SignatureLimit, command: str, host: dict[str, Any]) -> dict[str, Any]:
    return {
        "command": command,
        "machine": host,
        "signature_limit": limit.as_json(),
        **bench.as_json(),
        "repeat_spread": repeat_spread(bench.steps),
        "targets": targets(bench, limit),
    }


def write_json(data: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


_COLUMNS = (
    ("step", 9),
    ("asked", 7),
    ("offered", 8),
    ("committed", 9),
    ("done", 5),
    ("p50 ms", 8),
    ("p95 ms", 8),
    ("p99 ms", 8),
    ("lag p99", 8),
    ("cpu ms/tx", 9),
    ("client", 6),
)


def _cells(values: tuple[str, ...]) -> str:
    """The first column left-aligned, the figures right-aligned, each to its width."""
    return "  ".join(
        value.rjust(width) if index else value.ljust(width)
        for index, (value, (_, width)) in enumerate(zip(values, _COLUMNS, strict=True))
    )


def table_header(nodes: int) -> list[str]:
    header = _cells(tuple(name for name, _ in _COLUMNS))
    line = f"{header}  cpu per node (cores)"
    return [line, "-" * max(len(line), len(header) + 2 + 5 * nodes)]


def table_row(step: StepResult) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    cpu_ms = step.node_cpu_ms_per_tx
    cells = (
        step.label,
        f"{step.rate:.0f}",
        f"{step.offered_per_s:.1f}",
        f"{step.committed_per_s:.1f}",
        f"{step.committed_fraction:.0%}",
        ms(step.latency_ms["p50"]),
        ms(step.latency_ms["p95"]),
        ms(step.latency_ms["p99"]),
        ms(step.send_lag_ms["p99"]),
        "-" if cpu_ms is None else f"{cpu_ms:.2f}",
        f"{step.client_cpu:.2f}",
    )
    return f"{_cells(cells)}  " + " ".join(f"{cpu:.2f}" for cpu in step.cpu_per_node)


def summary_lines(data: dict[str, Any]) -> list[str]:
    limit, judged = data["signature_limit"], data["targets"]
    throughput, latency = judged["throughput"], judged["latency_at_half_rate"]
    lines = [
        f"stopped: {data['stop_reason']}",
        f"signature limit: {limit['verify_per_core_s']} Ed25519 verifications per core-second x {limit['cores']} cores "
        f"/ {limit['nodes']} nodes = {limit['tx_per_s']} tx/s",
        f"best committed: {judged['best_committed_tx_per_s']} tx/s = {judged['ratio_to_limit']:.1%} of the limit",
        f"target {throughput['target']}: {_verdict(throughput['met'])}",
        f"target {latency['target']}: p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms "
        f"at {latency['rate_tx_per_s']} tx/s: {_verdict(latency['met'])}",
    ]
    spread = data["repeat_spread"]
    if spread is not None:
        committed = spread["committed_tx_per_s"]
        lines.append(
            f"run-to-run at {spread['rate_tx_per_s']} tx/s ({spread['runs']} runs): committed {committed['min']}.."
            f"{committed['max']} tx/s, median {committed['median']} (range {spread['range_over_median']:.1%} of it)"
        )
    if data["watch_drops"]:
        lines.append(
            f"warning: the client's block feed was dropped {data['watch_drops']} times (it read too slowly); "
            "commits announced meanwhile count as not committed"
        )
    return lines


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"
