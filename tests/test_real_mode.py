"""``p2pmed sim run --mode real``: a scenario played on real node processes, same report."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from p2pmed.cli.main import cli
from p2pmed.sim.real import Links

SCENARIO = """
[network]
nodes = 4
latency_ms = [1, 5]
[workload]
rate = 10
duration = 8
mix = { probe = 1, consent = 1, record = 1, supply = 1 }
[[faults]]
at = 2
kind = "crash"
node = 1
[[faults]]
at = 3
kind = "partition"
groups = [[0, 2, 3]]
[[faults]]
at = 4
kind = "heal"
[[faults]]
at = 5
kind = "restart"
node = 1
[[faults]]
at = 5.5
kind = "pause"
node = 3
[[faults]]
at = 6.5
kind = "resume"
node = 3
"""


def test_a_crash_a_partition_and_a_pause_on_real_processes_keep_safety_and_liveness(tmp_path: Path) -> None:
    scenario = tmp_path / "real.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["sim", "run", str(scenario), "--mode", "real", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "real" and report["seed"] == 3 and report["nodes"] == 4
    assert report["safety"] == {"ok": True, "violations": []}
    assert report["liveness"]["ok"] is True and report["committed_txs"] == report["submitted_txs"] == 80
    assert report["refused_by_rules_txs"] == 0, "every transaction of the mix passes the rules"
    assert set(report["submitted_by_type"]) == {"consent.grant", "load.probe", "record.add", "supply.verify"}
    assert [fault["kind"] for fault in report["faults"]] == ["crash", "partition", "heal", "restart", "pause", "resume"]
    assert len(set(report["heights"].values())) == 1 and min(report["heights"].values()) >= 1
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(path.name for path in (out / "logs").iterdir()) == [f"node{i}.log" for i in range(4)]


def test_faults_only_the_simulator_can_play_are_refused_before_anything_starts(tmp_path: Path) -> None:
    scenario = tmp_path / "byzantine.toml"
    scenario.write_text(SCENARIO + '[[faults]]\nat = 6\nkind = "byzantine"\nnode = 2\nbehaviour = "silent"\n')
    result = CliRunner().invoke(cli, ["sim", "run", str(scenario), "--mode", "real", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "faults[5].kind: 'byzantine' (at 6 s) needs the simulator" in result.output and "--mode sim" in result.output
    assert not (tmp_path / "out").exists()


def test_links_cut_a_one_way_partition_in_one_direction_only() -> None:
    links = Links(drop=0.0, delay_ms=0, groups=((0,), (1, 2)), one_way=True)
    rules = [links.rules_for(node, 4) for node in range(4)]
    assert [(rule["blocked_out"], rule["blocked_in"]) for rule in rules] == [
        ("1,2", ""),
        ("", "0"),
        ("", "0"),
        ("", ""),
    ]
    two_way = Links(drop=0.1, delay_ms=20, groups=((0, 1), (2,)))
    assert two_way.rules_for(0, 4) == {"drop_permille": 100, "delay_ms": 20, "blocked_out": "2,3", "blocked_in": "2,3"}
    assert two_way.rules_for(3, 4)["blocked_out"] == "0,1,2", "a node in no group is cut off from everyone"
