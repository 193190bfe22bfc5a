"""Writing a simulation's results: ``report.json`` (the interface researchers script
against, fields as in DESIGN.md), ``timeline.json`` (heights and views per node per
second), ``report.png`` (see ``p2pmed.sim.plots``) and ``report.md``, a summary for
people that embeds the plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from p2pmed.sim.planted import WEAK_QUORUM_ENV

__all__ = ["report_markdown", "summary_line", "write_report"]


def write_report(report: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    summary = {key: value for key, value in report.items() if key != "timeline"}
    (out / "timeline.json").write_text(json.dumps(report.get("timeline", []), indent=None) + "\n")
    path = out / "report.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    try:
        from p2pmed.sim.plots import write_plot  # matplotlib is slow to import; only here
    except ModuleNotFoundError as missing:
        if (missing.name or "").partition(".")[0] != "matplotlib":
            raise
        plotted = False  # an install without the [plots] extra
    else:
        write_plot(report, out)
        plotted = True
    (out / "report.md").write_text(report_markdown(report, plotted))
    return path


def summary_line(report: dict[str, Any]) -> str:
    safety = "ok" if report["safety"]["ok"] else f"VIOLATED ({len(report['safety']['violations'])})"
    liveness = report["liveness"]
    live = {True: "ok", False: "FAILED", None: "not expected"}[liveness["ok"]]
    latency = report["latency_ms"]
    planted = f"PLANTED BUG ({report['planted_bug']}): " if report.get("planted_bug") else ""
    return (
        f"{planted}{report['scenario']} seed {report['seed']}: safety {safety}, liveness {live}; "
        f"{report['committed_txs']}/{report['submitted_txs']} txs committed, {report['view_changes']} view change(s), "
        f"latency p50 {latency['p50']} ms p99 {latency['p99']} ms; "
        + (
            f"{report['wall_s']} s on real processes"
            if report.get("mode") == "real"
            else f"{report['simulated_s']} s simulated in {report['wall_s']} s"
        )
    )


def report_markdown(report: dict[str, Any], plotted: bool = True) -> str:
    safety, liveness, latency = report["safety"], report["liveness"], report["latency_ms"]
    passed = safety["ok"] and liveness["ok"] is not False
    live = {True: "ok", False: "FAILED", None: "not expected"}[liveness["ok"]]
    real = report.get("mode") == "real"
    lines = [f"# {_cell(report['scenario'])}, seed {report['seed']}", ""]
    if report.get("planted_bug"):
        lines += [
            f"**Planted bug: {_cell(report['planted_bug'])}.** A research control; these results say nothing about "
            "p2pmed.",
            "",
        ]
    lines += [
        (
            f"**Outcome: {'pass' if passed else 'FAIL'}**: safety {'ok' if safety['ok'] else 'VIOLATED'}, liveness "
            f"{live}"
            f" ({_cell(liveness['detail'])})."
        ),
        "",
        "| | |",
        "|---|---|",
        f"| mode | {'real processes' if real else 'deterministic simulator'} |",
        f"| nodes | {report['nodes']} (tolerates f = {report['f']}) |",
        f"| committed / submitted txs | {report['committed_txs']} / {report['submitted_txs']} |",
        f"| view changes | {report['view_changes']} |",
        f"| latency p50 / p99 / max | {_ms(latency['p50'])} / {_ms(latency['p99'])} / {_ms(latency['max'])} |",
        f"| {'run' if real else 'simulated'} time | {report['simulated_s']} s (wall {report['wall_s']} s) |",
    ]
    if "trace_sha256" in report:
        lines.append(f"| event trace SHA-256 | `{report['trace_sha256']}` |")
    lines += ["", "## Fault schedule", ""]
    if report["faults"]:
        lines += ["| at (s) | fault | details |", "|---|---|---|"]
        for fault in report["faults"]:
            details = ", ".join(f"{key} {value}" for key, value in fault.items() if key not in ("at_s", "kind"))
            lines.append(f"| {fault['at_s']:g} | {fault['kind']} | {_cell(details)} |")
    else:
        lines.append("No faults.")
    if len(report.get("epochs", ())) > 1 or report.get("changes"):
        lines += _epochs(report)
    if safety["violations"]:
        lines += ["", "## Safety violations", "", "| node | kind | when | detail |", "|---|---|---|---|"]
        for violation in safety["violations"]:
            when = f"step {violation['step']} ({violation['time_s']} s)" if "step" in violation else ""
            lines.append(f"| {violation['node']} | {violation['kind']} | {when} | {_cell(violation['detail'])} |")
    lines += [
        "",
        "## Over time",
        "",
        (
            "Committed tx/s, latency p50/p99, height and view per node; shaded: nodes down (red), paused (orange),"
            " partitions (blue), Byzantine nodes (purple); dotted: other faults."
        ),
        "",
        "![](report.png)" if plotted else "(No plot: matplotlib is not installed; `pip install 'p2pmed[plots]'`.)",
        "",
        f"Replay: `{_replay(report)}`"
        + (" (real processes do not replay exactly)." if real else " (replays exactly)."),
    ]
    return "\n".join(lines) + "\n"


def _epochs(report: dict[str, Any]) -> list[str]:
    """The validator set changes voted, and each epoch's set as the chain says."""
    lines = [
        "",
        "## Validator sets",
        "",
        "| at (s) | voted at (s) | removes | adds | voters |",
        "|---|---|---|---|---|",
    ]
    for change in report["changes"]:
        when = f"{change['at_s']:g} | {change['voted_at_s']:g}"
        lines.append(f"| {when} | {change['remove']} | {change['add']} | {change['voters']} |")
    lines += ["", "| epoch | from height | validators |", "|---|---|---|"]
    lines += [f"| {e['number']} | {e['first_height']} | {e['validators']} |" for e in report["epochs"]]
    return lines


def _replay(report: dict[str, Any]) -> str:
    planted = f"{WEAK_QUORUM_ENV}=1 " if report.get("planted_bug") else ""
    real = " --mode real" if report.get("mode") == "real" else ""
    rate = f" --rate {report['rate_override']:g}" if report.get("rate_override") is not None else ""
    return f"{planted}p2pmed sim run SCENARIO.toml --seed {report['seed']}{real}{rate}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g} ms"


def _cell(text: Any) -> str:
    """``text`` safe inside a Markdown table cell or line."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
