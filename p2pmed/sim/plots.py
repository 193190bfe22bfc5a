"""One PNG per simulation: throughput, latency, height and view over time, faults shaded.

Red bands mark a node being down (crash to restart, or to the end), blue bands a
network partition (to the heal), and a dotted line every other fault, so a
researcher can see at a glance what each fault did to the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["write_plot"]


def _fault_windows(report: dict[str, Any]) -> tuple[list[tuple[float, float, str]], list[tuple[float, str]]]:
    end = float(report["simulated_s"])
    windows: list[tuple[float, float, str]] = []
    marks: list[tuple[float, str]] = []
    down_since: dict[int, float] = {}
    split_since: float | None = None
    for fault in report["faults"]:
        at, kind = float(fault["at_s"]), fault["kind"]
        if kind == "crash":
            down_since.setdefault(fault["node"], at)
        elif kind == "restart" and fault["node"] in down_since:
            windows.append((down_since.pop(fault["node"]), at, f"node {fault['node']} down"))
        elif kind == "partition":
            split_since = at if split_since is None else split_since
        elif kind == "heal" and split_since is not None:
            windows.append((split_since, at, "partition"))
            split_since = None
        else:
            marks.append((at, kind if "node" not in fault else f"{kind} node {fault['node']}"))
    windows += [(since, end, f"node {node} down") for node, since in down_since.items()]
    if split_since is not None:
        windows.append((split_since, end, "partition"))
    return windows, marks


def write_plot(report: dict[str, Any], out: Path) -> Path:
    series, timeline = report["series"], report["timeline"]
    nodes = range(report["nodes"])
    figure, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    seconds = [row["t_s"] for row in series]
    axes[0].plot(seconds, [row["committed"] for row in series], color="black")
    axes[0].set_ylabel("committed tx/s")
    for key, style in (("latency_p50_ms", "-"), ("latency_p99_ms", "--")):
        axes[1].plot(seconds, [row[key] if row[key] is not None else float("nan") for row in series], style,
                     label=key.removeprefix("latency_").removesuffix("_ms"))
    axes[1].set_ylabel("latency (ms)")
    axes[1].legend(loc="upper right")
    for node in nodes:
        rows = [row for row in timeline if row["node"] == node]
        times = [row["t_s"] for row in rows]
        axes[2].plot(times, [row["height"] for row in rows], label=f"node {node}")
        axes[3].step(times, [row["view"] if row["up"] else float("nan") for row in rows], where="post", label=f"node {node}")
    axes[2].set_ylabel("height")
    axes[3].set_ylabel("view")
    axes[3].yaxis.get_major_locator().set_params(integer=True)
    axes[3].set_xlabel("simulated time (s)")
    axes[2].legend(loc="upper left", fontsize="small")
    windows, marks = _fault_windows(report)
    for axis in axes:
        for start, end, label in windows:
            axis.axvspan(start, end, color="tab:blue" if label == "partition" else "tab:red", alpha=0.12)
        for at, _label in marks:
            axis.axvline(at, color="grey", linestyle=":")
    verdict = "safety ok" if report["safety"]["ok"] else "SAFETY VIOLATED"
    figure.suptitle(f"{report['scenario']}, seed {report['seed']}: {verdict}; shaded: "
                    + (", ".join(sorted({label for _, _, label in windows})) or "no outage"))
    figure.tight_layout()
    path = out / "report.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
