"""bench.png: p50 and p99 commit latency against committed throughput, with the signature limit.

Both axes are logarithmic: the sweep doubles its rate, and latency near
saturation grows by orders of magnitude, so a linear scale would crush all but
the last step. The signature limit is a vertical line, and 70 % of it (the
throughput target) a dotted one, so the gap between the curve and the target is
visible at a glance; the latency targets (judged at half the best rate) are
horizontal dotted lines in the colours of their curves.
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from p2pmed.bench.report import LATENCY_P50_TARGET_MS, LATENCY_P99_TARGET_MS, THROUGHPUT_TARGET_FRACTION
from p2pmed.bench.step import StepResult

__all__ = ["write_plot"]


def write_plot(steps: list[StepResult], limit_tx_per_s: float, title: str, path: Path) -> Path:
    """Plot the steps that committed something (in order of throughput) and write ``path``."""
    shown = sorted((step for step in steps if step.committed), key=lambda step: step.committed_per_s)
    figure = Figure(figsize=(10, 5))
    axes = figure.subplots()
    for name, style in (("p50", "o-"), ("p99", "s--")):
        axes.plot(
            [step.committed_per_s for step in shown],
            [math.nan if (latency := step.latency_ms[name]) is None else latency for step in shown],
            style,
            label=f"{name} latency",
        )
    axes.axvline(limit_tx_per_s, color="red", label=f"signature limit {limit_tx_per_s:.0f} tx/s")
    target = THROUGHPUT_TARGET_FRACTION * limit_tx_per_s
    axes.axvline(target, color="red", linestyle=":", label=f"target {THROUGHPUT_TARGET_FRACTION:.0%} of it")
    axes.axhline(LATENCY_P50_TARGET_MS, color="C0", linestyle=":", label=f"p50 target {LATENCY_P50_TARGET_MS:g} ms")
    axes.axhline(LATENCY_P99_TARGET_MS, color="C1", linestyle=":", label=f"p99 target {LATENCY_P99_TARGET_MS:g} ms")
    axes.set_xscale("log")
    axes.set_yscale("log")
    for axis in (axes.xaxis, axes.yaxis):  # plain numbers (2000, not 2x10^3), minor ticks labelled in short ranges
        axis.set_major_formatter(LogFormatter(labelOnlyBase=False))
        axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.5)))
    axes.set_xlabel("committed tx/s")
    axes.set_ylabel("submit-to-commit latency (ms)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")  # outside: it would hide lines
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path
