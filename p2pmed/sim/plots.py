"""One PNG per simulation: throughput, latency, height and view over time, faults shaded.

Red bands mark a node being down (crash to restart, or to the end), orange ones
a node paused (to its resume, or to the end), blue bands a
network partition, two-way or one-way (to the heal), purple bands a Byzantine
node (to the end), and a labelled dotted line every other fault, so a
researcher can see at a glance what each fault did to the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

__all__ = ["write_plot"]


def _fault_windows(report: dict[str, Any]) -> tuple[list[tuple[float, float, str]], list[tuple[float, str]]]:
    end = float(report["simulated_s"])
    windows: list[tuple[float, float, str]] = []
    marks: list[tuple[float, str]] = []
    down_since: dict[int, float] = {}
    paused_since: dict[int, float] = {}
    split_since: float | None = None
    split_label = "partition"
    for fault in report["faults"]:
        at, kind = float(fault["at_s"]), fault["kind"]
        if kind == "crash":
            down_since.setdefault(fault["node"], at)
        elif kind == "restart" and fault["node"] in down_since:
            windows.append((down_since.pop(fault["node"]), at, f"node {fault['node']} down"))
        elif kind == "pause":
            paused_since.setdefault(fault["node"], at)
        elif kind == "resume" and fault["node"] in paused_since:
            windows.append((paused_since.pop(fault["node"]), at, f"node {fault['node']} paused"))
        elif kind == "partition":
            split_since = at if split_since is None else split_since
            split_label = "one-way partition" if fault.get("one_way") else "partition"
        elif kind == "heal" and split_since is not None:
            windows.append((split_since, at, split_label))
            split_since = None
        elif kind == "byzantine":
            windows.append((at, end, f"node {fault['node']} {fault['behaviour']}"))
        else:
            marks.append((at, _mark_label(fault)))
    windows += [(since, end, f"node {node} down") for node, since in down_since.items()]
    windows += [(since, end, f"node {node} paused") for node, since in paused_since.items()]
    if split_since is not None:
        windows.append((split_since, end, split_label))
    return windows, marks


def _mark_label(fault: dict[str, Any]) -> str:
    """``drop 0.3``, ``clock_skew node 0 -20000 ms``: the fault and what it set."""
    parts = [fault["kind"]]
    if "node" in fault:
        parts.append(f"node {fault['node']}")
    for key, unit in (("probability", ""), ("latency_ms", " ms"), ("skew_ms", " ms")):
        if key in fault:
            parts.append(f"{fault[key]}{unit}")
    return " ".join(parts)


def _colour(label: str) -> str:
    if label.endswith("partition"):
        return "tab:blue"
    if label.endswith(" paused"):
        return "tab:orange"
    return "tab:red" if label.endswith(" down") else "tab:purple"


def write_plot(report: dict[str, Any], out: Path) -> Path:
    series, timeline = report["series"], report["timeline"]
    nodes = range(report["nodes"])
    figure = Figure(figsize=(10, 11))
    axes = figure.subplots(4, 1, sharex=True)
    seconds = [row["t_s"] for row in series]
    axes[0].plot(seconds, [row["committed"] for row in series], color="black")
    axes[0].set_ylabel("committed tx/s")
    for key, style in (("latency_p50_ms", "-"), ("latency_p99_ms", "--")):
        axes[1].plot(
            seconds,
            [row[key] if row[key] is not None else float("nan") for row in series],
            style,
            label=key.removeprefix("latency_").removesuffix("_ms"),
        )
    axes[1].set_ylabel("latency (ms)")
    axes[1].legend(loc="upper right")
    for node in nodes:
        rows = [row for row in timeline if row["node"] == node]
        times = [row["t_s"] for row in rows]
        axes[2].plot(times, [row["height"] for row in rows], label=f"node {node}")
        axes[3].step(
            times,
            [float("nan") if row["view"] is None else row["view"] for row in rows],
            where="post",
            label=f"node {node}",
        )
    axes[2].set_ylabel("height")
    axes[3].set_ylabel("view")
    axes[3].yaxis.get_major_locator().set_params(integer=True)
    axes[3].set_xlabel("time on real processes (s)" if report.get("mode") == "real" else "simulated time (s)")
    axes[2].legend(loc="upper left", fontsize="small")
    windows, marks = _fault_windows(report)
    for axis in axes:
        for start, end, label in windows:
            axis.axvspan(start, end, color=_colour(label), alpha=0.12)
        for at, _label in marks:
            axis.axvline(at, color="grey", linestyle=":")
    for at, label in marks:
        axes[0].text(
            at,
            0.98,
            f" {label}",
            transform=axes[0].get_xaxis_transform(),
            rotation=90,
            va="top",
            fontsize="x-small",
            color="grey",
        )
    verdict = "safety ok" if report["safety"]["ok"] else "SAFETY VIOLATED"
    figure.suptitle(
        f"{report['scenario']}, seed {report['seed']}: {verdict}; shaded: "
        + (", ".join(sorted({label for _, _, label in windows})) or "no outage")
    )
    figure.tight_layout()
    path = out / "report.png"
    figure.savefig(path, dpi=90)
    return path
