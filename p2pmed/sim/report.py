"""Writing a simulation's results: ``report.json`` (the interface researchers script
against, fields as in DESIGN.md), ``timeline.json`` (heights and views per node per
second) and ``report.png`` (see ``p2pmed.sim.plots``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["summary_line", "write_report"]


def write_report(report: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    summary = {key: value for key, value in report.items() if key != "timeline"}
    (out / "timeline.json").write_text(json.dumps(report.get("timeline", []), indent=None) + "\n")
    path = out / "report.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    from p2pmed.sim.plots import write_plot  # matplotlib is slow to import; only here

    write_plot(report, out)
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
        + (f"{report['wall_s']} s on real processes" if report.get("mode") == "real"
           else f"{report['simulated_s']} s simulated in {report['wall_s']} s")
    )
