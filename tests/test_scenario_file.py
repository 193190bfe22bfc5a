"""Scenario files: a valid file parses to the expected Scenario; every bad input is a ScenarioError naming the key."""

from __future__ import annotations

import copy
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmed.sim.scenario import (
    TX_KINDS,
    Behaviour,
    Change,
    Fault,
    FaultKind,
    NetworkSpec,
    Scenario,
    ScenarioError,
    WorkloadSpec,
)
from p2pmed.sim.scenario_file import KIND_FIELDS, MAX_FILE_BYTES, dump_scenario, load_scenario, parse_scenario

SIMULATIONS = Path(__file__).resolve().parent.parent / "simulations"
FAST = settings(max_examples=200, deadline=None)

VALID_TOML = """\
name = "everything"
description = "Uses every section and every fault kind."

[network]
nodes = 7
latency_ms = [1, 20]
drop = 0.01
duplicate = 0
reorder = 0.25

[workload]
rate = 50
duration = 40.5

[check]
liveness_bound = 12

[[faults]]
at = 30
kind = "heal"

[[faults]]
at = 2.5
kind = "partition"
groups = [[0, 1, 2], [3, 4], [6]]

[[faults]]
at = 1
kind = "crash"
node = 6

[[faults]]
at = 2.5
kind = "restart"
node = 6

[[faults]]
at = 0
kind = "byzantine"
node = 1
behaviour = "conflicting_votes"

[[faults]]
at = 3
kind = "drop"
probability = 0.5

[[faults]]
at = 4
kind = "delay"
latency_ms = [100, 200]

[[faults]]
at = 40.5
kind = "clock_skew"
node = 5
skew_ms = -1500
"""


def base() -> dict[str, Any]:
    """A valid decoded scenario that the rejection tests break one key at a time."""
    return {
        "description": "base",
        "network": {"nodes": 4, "latency_ms": [5, 50], "drop": 0.0, "duplicate": 0.0, "reorder": 0.0},
        "workload": {"rate": 100, "duration": 30},
        "check": {"liveness_bound": 30},
        "faults": [
            {"at": 5, "kind": "crash", "node": 0},
            {"at": 10, "kind": "partition", "groups": [[0, 1], [2, 3]]},
            {"at": 15, "kind": "byzantine", "node": 1, "behaviour": "equivocate"},
            {"at": 16, "kind": "drop", "probability": 0.1},
            {"at": 17, "kind": "delay", "latency_ms": [10, 20]},
            {"at": 18, "kind": "clock_skew", "node": 2, "skew_ms": 100},
            {"at": 20, "kind": "heal"},
        ],
    }


def with_(path: tuple[Any, ...], value: Any, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """``data`` (default: ``base()``) with the entry at ``path`` set to ``value`` (or removed if value is DELETE)."""
    data = copy.deepcopy(base() if data is None else data)
    target: Any = data
    for step in path[:-1]:
        target = target[step]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


DELETE = object()


def rejects(data: Any, key: str, fragment: str) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "test")
    assert info.value.key == key, info.value
    assert fragment in info.value.reason, info.value
    assert str(info.value).startswith(f"{key}: " if key else "")
    return info.value


# -- valid input ---------------------------------------------------------------------


def test_valid_file_parses_to_expected_scenario(tmp_path: Path) -> None:
    path = tmp_path / "ignored_stem.toml"
    path.write_text(VALID_TOML)
    assert load_scenario(path) == Scenario(
        name="everything",
        network=NetworkSpec(nodes=7, latency_ms=(1, 20), drop=0.01, duplicate=0.0, reorder=0.25),
        workload=WorkloadSpec(rate=50.0, duration_s=40.5),
        faults=(
            Fault(at_s=0.0, kind=FaultKind.BYZANTINE, node=1, behaviour=Behaviour.CONFLICTING_VOTES),
            Fault(at_s=1.0, kind=FaultKind.CRASH, node=6),
            Fault(at_s=2.5, kind=FaultKind.PARTITION, groups=((0, 1, 2), (3, 4), (6,))),
            Fault(at_s=2.5, kind=FaultKind.RESTART, node=6),
            Fault(at_s=3.0, kind=FaultKind.DROP, probability=0.5),
            Fault(at_s=4.0, kind=FaultKind.DELAY, latency_ms=(100, 200)),
            Fault(at_s=30.0, kind=FaultKind.HEAL),
            Fault(at_s=40.5, kind=FaultKind.CLOCK_SKEW, node=5, skew_ms=-1500),
        ),
        liveness_bound_s=12.0,
    )


def test_values_have_the_dataclass_types(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(VALID_TOML)
    scenario = load_scenario(path)
    assert type(scenario.workload.rate) is float and type(scenario.workload.duration_s) is float
    assert type(scenario.network.duplicate) is float and type(scenario.liveness_bound_s) is float
    assert all(type(fault.at_s) is float for fault in scenario.faults)
    assert all(type(fault.kind) is FaultKind for fault in scenario.faults)
    assert isinstance(scenario.network.latency_ms, tuple)
    assert all(isinstance(group, tuple) for fault in scenario.faults for group in fault.groups)


def test_minimal_file_uses_defaults_and_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "tiny_one.toml"
    path.write_text("[network]\nnodes = 4\n")
    assert load_scenario(path) == Scenario(
        name="tiny_one", network=NetworkSpec(nodes=4), workload=WorkloadSpec(), faults=()
    )


def test_empty_sections_use_defaults() -> None:
    scenario = parse_scenario({"network": {"nodes": 1}, "workload": {}, "check": {}, "faults": []}, "x")
    assert scenario == Scenario(name="x", network=NetworkSpec(nodes=1), workload=WorkloadSpec(), faults=())


def test_faults_are_sorted_by_time_stably() -> None:
    faults = [
        {"at": 9, "kind": "heal"},
        {"at": 1, "kind": "crash", "node": 3},
        {"at": 1, "kind": "crash", "node": 1},
        {"at": 0.5, "kind": "restart", "node": 2},
        {"at": 1, "kind": "crash", "node": 2},
    ]
    scenario = parse_scenario(with_(("faults",), faults), "x")
    assert [(fault.at_s, fault.node) for fault in scenario.faults] == [(0.5, 2), (1, 3), (1, 1), (1, 2), (9, None)]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("network", "nodes"), 64),
        (("network", "latency_ms"), [0, 0]),
        (("network", "latency_ms"), [60_000, 60_000]),
        (("network", "drop"), 0),
        (("network", "drop"), 1),
        (("network", "reorder"), 1.0),
        (("workload", "rate"), 100_000),
        (("workload", "rate"), 0.001),
        (("workload", "duration"), 86_400),
        (("check", "liveness_bound"), 86_400),
        (("faults", 0, "at"), 0),
        (("faults", 0, "at"), 30),
        (("faults", 0, "node"), 3),
        (("faults", 5, "skew_ms"), 3_600_000),
        (("faults", 5, "skew_ms"), -3_600_000),
        (("faults", 3, "probability"), 1),
        (("faults", 1, "groups"), [[0, 1, 2, 3]]),
        (("faults", 1, "groups"), [[3]]),
        (("name",), "custom name"),
        (("description",), ""),
    ],
)
def test_boundary_values_are_accepted(path: tuple[Any, ...], value: Any) -> None:
    parse_scenario(with_(path, value), "x")


def test_fewer_than_four_nodes_are_allowed() -> None:
    data = {"network": {"nodes": 1}, "faults": [{"at": 0, "kind": "crash", "node": 0}]}
    assert parse_scenario(data, "x").network.nodes == 1


# -- reading the file ----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "nope.toml")
    assert info.value.key == "" and "no such file" in info.value.reason and "nope.toml" in info.value.reason


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path)
    assert info.value.key == "" and "directory" in info.value.reason


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[network]\nnodes = \n", "line 2"),
        ("[network]\nnodes = 4\n[network]\nnodes = 5\n", "line 3"),
        ("[network\nnodes = 4\n", "line 1"),
        ('description = "unterminated\n[network]\nnodes = 4\n', "line 1"),
        ("[network]\nnodes = 4\nnodes = 5\n", "line 3"),
    ],
)
def test_invalid_toml_reports_the_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.key == ""
    assert "invalid TOML" in info.value.reason and fragment in info.value.reason


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'description = "caf\xe9"\n[network]\nnodes = 4\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.key == "" and "UTF-8" in info.value.reason


def test_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    path.write_text("[network]\nnodes = 4\n" + "#" * MAX_FILE_BYTES + "\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.key == "" and "larger than" in info.value.reason


def test_deeply_nested_toml(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.key in ("", "x")


# -- unknown sections and keys -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "key", "fragment"),
    [
        (("netwrok",), "netwrok", "unknown section; did you mean 'network'?"),
        (("workloads",), "workloads", "unknown section; did you mean 'workload'?"),
        (("fault",), "fault", "did you mean 'faults'?"),
        (("checks",), "checks", "did you mean 'check'?"),
        (("nmae",), "nmae", "unknown key; did you mean 'name'?"),
        (("descripton",), "descripton", "did you mean 'description'?"),
        (("network", "node"), "network.node", "unknown key; did you mean 'nodes'?"),
        (("network", "latency"), "network.latency", "did you mean 'latency_ms'?"),
        (("network", "dropp"), "network.dropp", "did you mean 'drop'?"),
        (("network", "reordering"), "network.reordering", "did you mean 'reorder'?"),
        (("workload", "durration"), "workload.durration", "did you mean 'duration'?"),
        (("workload", "duration_s"), "workload.duration_s", "did you mean 'duration'?"),
        (("workload", "rates"), "workload.rates", "did you mean 'rate'?"),
        (("check", "liveness"), "check.liveness", "did you mean 'liveness_bound'?"),
        (("faults", 0, "nod"), "faults[0].nod", "did you mean 'node'?"),
        (("faults", 1, "group"), "faults[1].group", "did you mean 'groups'?"),
        (("faults", 2, "behavior"), "faults[2].behavior", "did you mean 'behaviour'?"),
        (("faults", 6, "at_s"), "faults[6].at_s", "did you mean 'at'?"),
        (("network", "zzz"), "network.zzz", "unknown key; expected one of: nodes, latency_ms"),
        (("qqqq",), "qqqq", "unknown key; expected one of: name, description, network"),
    ],
)
def test_unknown_keys_are_caught(path: tuple[Any, ...], key: str, fragment: str) -> None:
    value: Any = {"x": 1} if len(path) == 1 and "section" in fragment else 1
    rejects(with_(path, value), key, fragment)


def test_unknown_table_array_is_a_section() -> None:
    rejects(with_(("fault",), [{"at": 1, "kind": "heal"}]), "fault", "unknown section; did you mean 'faults'?")


def test_unknown_key_is_reported_before_missing_required_key() -> None:
    rejects({"network": {"node": 4}}, "network.node", "did you mean 'nodes'?")


# -- wrong types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "key", "fragment"),
    [
        (("network",), 4, "network", "expected a [network] table, got integer 4"),
        (("network",), [{"nodes": 4}], "network", "expected a [network] table"),
        (("workload",), "fast", "workload", "expected a [workload] table, got string 'fast'"),
        (("check",), True, "check", "expected a [check] table, got boolean true"),
        (
            ("faults",),
            {"at": 1, "kind": "heal"},
            "faults",
            "expected an array of tables ([[faults]] entries), got table",
        ),
        (("faults",), "none", "faults", "expected an array of tables"),
        (("faults", 0), 3, "faults[0]", "expected a table with 'at' and 'kind'"),
        (("faults", 0), [1], "faults[0]", "got array of 1 item"),
        (("network", "nodes"), True, "network.nodes", "expected an integer from 1 to 64, got boolean true"),
        (("network", "nodes"), False, "network.nodes", "got boolean false"),
        (("network", "nodes"), "4", "network.nodes", "expected an integer from 1 to 64, got string '4'"),
        (("network", "nodes"), 4.0, "network.nodes", "got float 4.0"),
        (("network", "latency_ms"), 5, "network.latency_ms", "expected an array of two integers [lower, upper]"),
        (("network", "latency_ms"), [5], "network.latency_ms", "got array of 1 item"),
        (("network", "latency_ms"), [1, 2, 3], "network.latency_ms", "got array of 3 items"),
        (("network", "latency_ms"), {"lo": 1}, "network.latency_ms", "expected an array of two integers"),
        (("network", "latency_ms"), [5.0, 6], "network.latency_ms[0]", "integer from 0 to 60000, got float 5.0"),
        (("network", "latency_ms"), [5, True], "network.latency_ms[1]", "got boolean true"),
        (("network", "drop"), "0.1", "network.drop", "expected a probability, a number from 0 to 1, got string"),
        (("network", "duplicate"), True, "network.duplicate", "got boolean true"),
        (("network", "reorder"), [0.1], "network.reorder", "expected a probability"),
        (("workload", "rate"), True, "workload.rate", "a number > 0 and <= 100000, got boolean true"),
        (("workload", "duration"), "30s", "workload.duration", "expected seconds, a number > 0 and <= 86400"),
        (("check", "liveness_bound"), False, "check.liveness_bound", "got boolean false"),
        (("name",), 3, "name", "expected a string, got integer 3"),
        (("description",), ["a"], "description", "expected a string, got array"),
        (("faults", 0, "kind"), 1, "faults[0].kind", "expected a string, one of: crash, restart"),
        (("faults", 0, "at"), "5", "faults[0].at", "expected seconds, a number from 0 to the workload duration (30)"),
        (("faults", 0, "at"), True, "faults[0].at", "got boolean true"),
        (("faults", 0, "node"), True, "faults[0].node", "expected a node index, an integer from 0 to 3"),
        (("faults", 0, "node"), 1.0, "faults[0].node", "got float 1.0"),
        (("faults", 0, "node"), "0", "faults[0].node", "got string '0'"),
        (("faults", 2, "behaviour"), 2, "faults[2].behaviour", "expected a string, one of: equivocate, silent"),
        (("faults", 3, "probability"), True, "faults[3].probability", "expected a probability"),
        (("faults", 4, "latency_ms"), 10, "faults[4].latency_ms", "expected an array of two integers"),
        (("faults", 4, "latency_ms"), ["1", 2], "faults[4].latency_ms[0]", "got string '1'"),
        (("faults", 5, "skew_ms"), 1.5, "faults[5].skew_ms", "an integer from -3600000 to 3600000, got float 1.5"),
        (("faults", 5, "skew_ms"), True, "faults[5].skew_ms", "got boolean true"),
    ],
)
def test_wrong_types_are_rejected(path: tuple[Any, ...], value: Any, key: str, fragment: str) -> None:
    rejects(with_(path, value), key, fragment)


def test_top_level_must_be_a_table() -> None:
    rejects([1, 2], "", "expected the top-level table of a scenario file, got array")


def test_non_string_key() -> None:
    rejects(with_(("network", 7), 1), "network", "keys must be strings, got integer 7")


# -- ranges --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "key", "fragment"),
    [
        (("network", "nodes"), 0, "network.nodes", "0 is out of range; expected an integer from 1 to 64"),
        (("network", "nodes"), 65, "network.nodes", "65 is out of range"),
        (("network", "nodes"), -3, "network.nodes", "-3 is out of range"),
        (("network", "nodes"), 10**100, "network.nodes", "out of range"),
        (("network", "latency_ms"), [50, 5], "network.latency_ms", "lower bound 50 is greater than upper bound 5"),
        (("network", "latency_ms"), [-1, 5], "network.latency_ms[0]", "-1 is out of range; expected milliseconds"),
        (("network", "latency_ms"), [5, 60_001], "network.latency_ms[1]", "60001 is out of range"),
        (
            ("network", "drop"),
            -0.1,
            "network.drop",
            "-0.1 is out of range; expected a probability, a number from 0 to 1",
        ),
        (("network", "drop"), 1.1, "network.drop", "out of range"),
        (("network", "duplicate"), 2, "network.duplicate", "out of range"),
        (("network", "reorder"), math.nan, "network.reorder", "nan is not a finite number"),
        (("network", "drop"), math.inf, "network.drop", "inf is not a finite number"),
        (("workload", "rate"), 0, "workload.rate", "0 is out of range; expected transactions per second, a number > 0"),
        (("workload", "rate"), -5, "workload.rate", "out of range"),
        (("workload", "rate"), 100_001, "workload.rate", "<= 100000"),
        (("workload", "rate"), math.inf, "workload.rate", "not a finite number"),
        (
            ("workload", "duration"),
            0,
            "workload.duration",
            "0 is out of range; expected seconds, a number > 0 and <= 86400",
        ),
        (("workload", "duration"), 86_401, "workload.duration", "out of range"),
        (("workload", "duration"), -math.inf, "workload.duration", "not a finite number"),
        (("check", "liveness_bound"), 0, "check.liveness_bound", "out of range; expected seconds, a number > 0"),
        (("check", "liveness_bound"), 86_401, "check.liveness_bound", "out of range"),
        (("faults", 0, "at"), -1, "faults[0].at", "-1 is out of range; expected seconds, a number from 0 to"),
        (
            ("faults", 0, "at"),
            30.5,
            "faults[0].at",
            "30.5 is out of range; expected seconds, a number from 0 to the workload duration (30)",
        ),
        (("faults", 0, "at"), math.nan, "faults[0].at", "not a finite number"),
        (
            ("faults", 0, "node"),
            4,
            "faults[0].node",
            "4 is out of range; expected a node index, an integer from 0 to 3 (network.nodes = 4)",
        ),
        (("faults", 0, "node"), -1, "faults[0].node", "out of range"),
        (("faults", 2, "node"), 99, "faults[2].node", "out of range"),
        (("faults", 5, "node"), 4, "faults[5].node", "out of range"),
        (("faults", 3, "probability"), 1.5, "faults[3].probability", "out of range; expected a probability"),
        (
            ("faults", 4, "latency_ms"),
            [20, 10],
            "faults[4].latency_ms",
            "lower bound 20 is greater than upper bound 10",
        ),
        (("faults", 4, "latency_ms"), [0, 70_000], "faults[4].latency_ms[1]", "out of range"),
        (
            ("faults", 5, "skew_ms"),
            3_600_001,
            "faults[5].skew_ms",
            "out of range; expected milliseconds, an integer from -3600000",
        ),
        (("faults", 5, "skew_ms"), -3_600_001, "faults[5].skew_ms", "out of range"),
        (("name",), "  ", "name", "expected a non-blank printable string"),
        (("name",), "x" * 201, "name", "at most 200 characters"),
        (("name",), "a\nb", "name", "printable"),
    ],
)
def test_out_of_range_values_are_rejected(path: tuple[Any, ...], value: Any, key: str, fragment: str) -> None:
    rejects(with_(path, value), key, fragment)


def test_fault_time_is_checked_against_the_default_duration() -> None:
    data = with_(("workload",), DELETE)
    parse_scenario(with_(("faults", 0, "at"), 60, data), "x")
    rejects(with_(("faults", 0, "at"), 61, data), "faults[0].at", "workload duration (60)")


def test_node_index_is_checked_against_this_files_node_count() -> None:
    data = with_(("network", "nodes"), 7)
    parse_scenario(with_(("faults", 0, "node"), 6, data), "x")
    rejects(with_(("faults", 0, "node"), 7, data), "faults[0].node", "from 0 to 6 (network.nodes = 7)")


# -- required keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "key", "fragment"),
    [
        (("network",), "network", "missing section; expected a [network] table"),
        (("network", "nodes"), "network.nodes", "missing; expected the number of nodes"),
        (
            ("faults", 0, "kind"),
            "faults[0].kind",
            "missing; expected one of: crash, restart, pause, resume, partition, heal",
        ),
        (("faults", 6, "at"), "faults[6].at", "missing; expected the time of the fault in seconds"),
        (("faults", 0, "node"), "faults[0].node", "missing; a 'crash' fault takes 'at', 'kind' and 'node'"),
        (("faults", 1, "groups"), "faults[1].groups", "missing; a 'partition' fault takes 'at', 'kind' and 'groups'"),
        (
            ("faults", 2, "behaviour"),
            "faults[2].behaviour",
            "missing; a 'byzantine' fault takes 'at', 'kind' and 'node', 'behaviour'",
        ),
        (("faults", 2, "node"), "faults[2].node", "missing; a 'byzantine' fault"),
        (
            ("faults", 3, "probability"),
            "faults[3].probability",
            "missing; a 'drop' fault takes 'at', 'kind' and 'probability'",
        ),
        (
            ("faults", 4, "latency_ms"),
            "faults[4].latency_ms",
            "missing; a 'delay' fault takes 'at', 'kind' and 'latency_ms'",
        ),
        (
            ("faults", 5, "skew_ms"),
            "faults[5].skew_ms",
            "missing; a 'clock_skew' fault takes 'at', 'kind' and 'node', 'skew_ms'",
        ),
        (("faults", 5, "node"), "faults[5].node", "missing; a 'clock_skew' fault"),
    ],
)
def test_missing_required_keys_are_rejected(path: tuple[Any, ...], key: str, fragment: str) -> None:
    rejects(with_(path, DELETE), key, fragment)


@pytest.mark.parametrize("kind", ["restart", "pause", "resume"])
def test_restart_pause_and_resume_need_a_node(kind: str) -> None:
    rejects(with_(("faults", 0), {"at": 1, "kind": kind}), "faults[0].node", f"missing; a '{kind}' fault")


# -- fault kinds and their fields ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (
            "crsh",
            "unknown fault kind 'crsh'; did you mean 'crash'? expected one of: crash, restart, pause, resume, "
            "partition",
        ),
        ("partiton", "did you mean 'partition'?"),
        ("clock-skew", "did you mean 'clock_skew'?"),
        ("CRASH", "unknown fault kind 'CRASH'"),
        ("explode", "unknown fault kind 'explode'; expected one of: crash"),
        ("", "unknown fault kind ''"),
    ],
)
def test_unknown_fault_kind(value: str, fragment: str) -> None:
    rejects(with_(("faults", 0, "kind"), value), "faults[0].kind", fragment)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("equivocating", "unknown behaviour 'equivocating'; did you mean 'equivocate'?"),
        ("slient", "did you mean 'silent'?"),
        (
            "evil",
            "unknown behaviour 'evil'; expected one of: equivocate, silent, conflicting_votes, garbage, replay, forge",
        ),
    ],
)
def test_unknown_behaviour(value: str, fragment: str) -> None:
    rejects(with_(("faults", 2, "behaviour"), value), "faults[2].behaviour", fragment)


@pytest.mark.parametrize(
    ("index", "field", "value", "fragment"),
    [
        (0, "groups", [[0, 1], [2, 3]], "not used by a 'crash' fault; a 'crash' fault takes 'at', 'kind' and 'node'"),
        (0, "behaviour", "silent", "not used by a 'crash' fault"),
        (0, "skew_ms", 5, "not used by a 'crash' fault"),
        (1, "node", 0, "not used by a 'partition' fault; a 'partition' fault takes 'at', 'kind' and 'groups'"),
        (1, "probability", 0.5, "not used by a 'partition' fault"),
        (2, "probability", 0.5, "not used by a 'byzantine' fault"),
        (3, "node", 0, "not used by a 'drop' fault"),
        (3, "latency_ms", [1, 2], "not used by a 'drop' fault"),
        (4, "probability", 0.5, "not used by a 'delay' fault"),
        (5, "behaviour", "silent", "not used by a 'clock_skew' fault"),
        (6, "node", 0, "not used by a 'heal' fault; a 'heal' fault takes only 'at' and 'kind'"),
        (6, "groups", [[0]], "not used by a 'heal' fault"),
    ],
)
def test_fields_not_used_by_the_kind_are_rejected(index: int, field: str, value: Any, fragment: str) -> None:
    rejects(with_(("faults", index, field), value), f"faults[{index}].{field}", fragment)


def test_unused_field_is_rejected_even_when_its_value_is_invalid() -> None:
    rejects(with_(("faults", 0, "groups"), "garbage"), "faults[0].groups", "not used by a 'crash' fault")


# -- partition groups ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("groups", "key", "fragment"),
    [
        (
            [],
            "faults[1].groups",
            "expected a non-empty array of arrays of node indices, e.g. [[0, 1], [2, 3]], got array of 0 items",
        ),
        ("0,1", "faults[1].groups", "expected a non-empty array of arrays of node indices"),
        ([0, 1], "faults[1].groups[0]", "expected a non-empty array of node indices, got integer 0"),
        ([[0, 1], []], "faults[1].groups[1]", "expected a non-empty array of node indices, got array of 0 items"),
        (
            [[0, 1], [2, "3"]],
            "faults[1].groups[1][1]",
            "expected a node index, an integer from 0 to 3 (network.nodes = 4), got string '3'",
        ),
        ([[0, True]], "faults[1].groups[0][1]", "got boolean true"),
        ([[0, 1.0]], "faults[1].groups[0][1]", "got float 1.0"),
        (
            [[0, 1], [2, 4]],
            "faults[1].groups[1][1]",
            "4 is out of range; expected a node index, an integer from 0 to 3",
        ),
        ([[-1]], "faults[1].groups[0][0]", "out of range"),
        (
            [[0, 1], [1, 2]],
            "faults[1].groups[1][0]",
            "node 1 is already in faults[1].groups[0]; each node may be in at most one group",
        ),
        ([[0, 0]], "faults[1].groups[0][1]", "node 0 is already in faults[1].groups[0]"),
        ([[0, 1], [[2, 3]]], "faults[1].groups[1][0]", "got array of 2 items"),
    ],
)
def test_bad_partition_groups(groups: Any, key: str, fragment: str) -> None:
    rejects(with_(("faults", 1, "groups"), groups), key, fragment)


def test_partition_groups_may_leave_nodes_out() -> None:
    scenario = parse_scenario(with_(("faults", 1, "groups"), [[0, 2], [3]]), "x")
    assert scenario.faults[1].groups == ((0, 2), (3,))


def test_one_way_partition_parses_and_defaults_to_two_way() -> None:
    scenario = parse_scenario(with_(("faults", 1, "one_way"), True), "x")
    assert scenario.faults[1].one_way is True and scenario.faults[1].groups == ((0, 1), (2, 3))
    assert parse_scenario(base(), "x").faults[1].one_way is False


@pytest.mark.parametrize(
    ("index", "value", "key", "fragment"),
    [
        (1, "yes", "faults[1].one_way", "expected a boolean (true or false), got string 'yes'"),
        (1, 1, "faults[1].one_way", "expected a boolean"),
        (0, True, "faults[0].one_way", "not used by a 'crash' fault"),
        (6, False, "faults[6].one_way", "not used by a 'heal' fault"),
    ],
)
def test_bad_one_way(index: int, value: Any, key: str, fragment: str) -> None:
    rejects(with_(("faults", index, "one_way"), value), key, fragment)


@pytest.mark.parametrize("groups", [[[0]], [[0], [1], [2, 3]]])
def test_one_way_partition_takes_exactly_two_groups(groups: list[list[int]]) -> None:
    data = with_(("faults", 1), {"at": 10, "kind": "partition", "groups": groups, "one_way": True})
    rejects(data, "faults[1].one_way", f"exactly two groups [from, to] in 'groups', got {len(groups)}")


def test_a_twinned_node_takes_no_later_behaviour() -> None:
    faults = [
        {"at": 9, "kind": "byzantine", "node": 2, "behaviour": "silent"},
        {"at": 3, "kind": "byzantine", "node": 2, "behaviour": "twins"},
    ]
    rejects(with_(("faults",), faults), "faults[0].behaviour", "node 2 is already twinned by faults[1]")
    earlier = [{**faults[0], "at": 1}, faults[1]]
    assert [fault.behaviour for fault in parse_scenario(with_(("faults",), earlier), "x").faults] == [
        Behaviour.SILENT,
        Behaviour.TWINS,
    ]


def test_partition_error_mentions_the_optional_one_way() -> None:
    rejects(with_(("faults", 1, "groups"), DELETE), "faults[1].groups", "(optionally 'one_way')")


# -- errors name the first problem in file order ---------------------------------------


def test_error_names_the_failing_fault_index() -> None:
    faults = [{"at": 1, "kind": "heal"}, {"at": 2, "kind": "heal"}, {"at": 3, "kind": "crash", "node": 9}]
    rejects(with_(("faults",), faults), "faults[2].node", "out of range")


def test_fault_index_is_file_order_not_sorted_order() -> None:
    faults = [{"at": 20, "kind": "heal"}, {"at": 1, "kind": "crash", "node": 9}]
    rejects(with_(("faults",), faults), "faults[1].node", "out of range")


# -- writing: dump_scenario round-trips ----------------------------------------------


def mixes() -> st.SearchStrategy[tuple[tuple[str, float], ...]]:
    """Weights for some kinds, in ``TX_KINDS`` order as the parser gives them, one of them > 0."""
    weights = st.fixed_dictionaries({}, optional={kind: st.floats(0, 1000) for kind in TX_KINDS})
    return weights.filter(lambda mix: any(w > 0 for w in mix.values())).map(
        lambda mix: tuple((kind, mix[kind]) for kind in TX_KINDS if kind in mix)
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Any Scenario that ``parse_scenario`` can produce."""
    nodes = draw(st.integers(1, 64))
    probability = st.floats(0, 1)
    latency = st.tuples(st.integers(0, 60_000), st.integers(0, 60_000)).map(lambda pair: (min(pair), max(pair)))
    duration_s = draw(st.floats(0, 86_400, exclude_min=True))
    node = st.integers(0, nodes - 1)
    faults = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(list(FaultKind)))
        fields: dict[str, Any] = {}
        if "node" in KIND_FIELDS[kind]:
            fields["node"] = draw(node)
        if kind is FaultKind.PARTITION:
            members = draw(st.permutations(range(nodes)))[: draw(st.integers(1, nodes))]
            cuts = sorted(draw(st.sets(st.integers(1, len(members) - 1), max_size=3))) if len(members) > 1 else []
            bounds = zip([0, *cuts], [*cuts, len(members)], strict=True)
            fields["groups"] = tuple(tuple(members[a:b]) for a, b in bounds)
            fields["one_way"] = len(fields["groups"]) == 2 and draw(st.booleans())
        if kind is FaultKind.BYZANTINE:
            fields["behaviour"] = draw(st.sampled_from(list(Behaviour)))
        if kind is FaultKind.DROP:
            fields["probability"] = draw(probability)
        if kind is FaultKind.DELAY:
            fields["latency_ms"] = draw(latency)
        if kind is FaultKind.CLOCK_SKEW:
            fields["skew_ms"] = draw(st.integers(-3_600_000, 3_600_000))
        faults.append(Fault(at_s=draw(st.floats(0, duration_s)), kind=kind, **fields))
    printable = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
    return Scenario(
        name=draw(printable.filter(lambda text: text.strip() and text.isprintable())),
        network=NetworkSpec(nodes, draw(latency), draw(probability), draw(probability), draw(probability)),
        workload=WorkloadSpec(draw(st.floats(0, 100_000, exclude_min=True)), duration_s, draw(mixes())),
        faults=_twins_stay_twins(sorted(faults, key=lambda fault: fault.at_s)),
        liveness_bound_s=draw(st.floats(0, 86_400, exclude_min=True)),
    )


def _twins_stay_twins(faults: list[Fault]) -> tuple[Fault, ...]:
    twinned: set[int | None] = set()
    kept = []
    for fault in faults:
        if fault.kind is FaultKind.BYZANTINE:
            if fault.node in twinned and fault.behaviour is not Behaviour.TWINS:
                continue
            if fault.behaviour is Behaviour.TWINS:
                twinned.add(fault.node)
        kept.append(fault)
    return tuple(kept)


@FAST
@given(scenarios(), st.one_of(st.none(), st.text(max_size=80)))
def test_a_dumped_scenario_parses_back_equal(scenario: Scenario, description: str | None) -> None:
    text = dump_scenario(scenario, description)
    data = tomllib.loads(text)
    assert parse_scenario(data, "ignored") == scenario
    assert data.get("description") == description


@pytest.mark.parametrize("path", sorted(SIMULATIONS.glob("*.toml")), ids=lambda path: path.stem)
def test_every_shipped_scenario_survives_a_round_trip_through_a_file(path: Path, tmp_path: Path) -> None:
    scenario = load_scenario(path)
    copy_path = tmp_path / "copy.toml"
    copy_path.write_text(dump_scenario(scenario, "a copy"))
    assert load_scenario(copy_path) == scenario


# -- property: nothing but ScenarioError escapes ---------------------------------------

KEYS = st.sampled_from(
    ["name", "description", "network", "workload", "check", "faults", "nodes", "latency_ms", "drop", "duplicate",
     "reorder", "rate", "duration", "liveness_bound", "at", "kind", "node", "groups", "behaviour", "probability",
     "skew_ms", "crash", "partition", "byzantine", "changes", "add", "remove", "validators", "primary"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from([member.value for member in FaultKind] + [member.value for member in Behaviour]),
    st.dates(),
    st.datetimes(),
    st.times(),
    st.binary(max_size=4),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(KEYS, st.text(max_size=6)), children, max_size=6),
    ),
    max_leaves=30,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _outcome(data: Any) -> None:
    try:
        scenario = parse_scenario(data, "fuzz")
    except ScenarioError as error:
        assert isinstance(error.key, str) and isinstance(error.reason, str) and error.reason
        return
    assert isinstance(scenario, Scenario)
    assert 1 <= scenario.network.nodes <= 64
    assert list(scenario.faults) == sorted(scenario.faults, key=lambda fault: fault.at_s)


@FAST
@given(VALUES)
def test_random_values_only_raise_scenario_error(data: Any) -> None:
    _outcome(data)


@FAST
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_random_top_level_tables_only_raise_scenario_error(data: dict[str, Any]) -> None:
    _outcome(data)


@FAST
@given(st.data())
def test_mutated_valid_scenarios_only_raise_scenario_error(data: st.DataObject) -> None:
    scenario = base()
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(scenario)
        path = data.draw(st.sampled_from(paths))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            scenario = with_(path, data.draw(VALUES), scenario)
        elif action == "delete" and isinstance(path[-1], str):
            scenario = with_(path, DELETE, scenario)
        else:
            target: Any = scenario
            for step in path[:-1]:
                target = target[step]
            if isinstance(target, dict):
                target[data.draw(KEYS)] = data.draw(VALUES)
            elif isinstance(target, list):
                target.append(data.draw(VALUES))
    _outcome(scenario)


@FAST
@given(st.text(max_size=200))
def test_random_toml_text_only_raises_scenario_error(text: str) -> None:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return
    _outcome(data)


# -- shipped scenarios ---------------------------------------------------------------


SHIPPED = sorted(SIMULATIONS.glob("*.toml"))


def test_shipped_scenarios_exist() -> None:
    names = {path.stem for path in SHIPPED}
    assert {
        "crash_primary",
        "partition",
        "byzantine_primary",
        "flaky_network",
        "silent_replica",
        "f_plus_one_crash",
        "f_crashes",
        "partition_minority",
        "partition_majority",
        "partition_primary",
        "one_way_partition",
        "clock_skew",
        "twins",
        "lossy_reordering",
        "pause_primary",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=[path.stem for path in SHIPPED])
def test_every_shipped_scenario_loads(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    description = tomllib.loads(path.read_text())["description"]
    assert isinstance(description, str) and description.strip()
    assert scenario.workload == WorkloadSpec(rate=100.0, duration_s=30.0)


def test_shipped_scenarios_say_what_they_claim() -> None:
    loaded = {path.stem: load_scenario(path) for path in SHIPPED}
    crash, restart = FaultKind.CRASH, FaultKind.RESTART
    assert [(f.at_s, f.kind, f.node) for f in loaded["crash_primary"].faults] == [(5, crash, 0), (20, restart, 0)]
    partition = loaded["partition"].faults
    assert [(f.at_s, f.kind, f.groups) for f in partition] == [
        (5, FaultKind.PARTITION, ((0, 1), (2, 3))),
        (15, FaultKind.HEAL, ()),
    ]
    assert [(f.at_s, f.node, f.behaviour) for f in loaded["byzantine_primary"].faults] == [(1, 0, Behaviour.EQUIVOCATE)]
    assert loaded["flaky_network"].network == NetworkSpec(4, (5, 50), 0.05, 0.05, 0.1)
    assert [(f.node, f.behaviour) for f in loaded["silent_replica"].faults] == [(3, Behaviour.SILENT)]
    assert [(f.at_s, f.kind, f.node) for f in loaded["f_plus_one_crash"].faults] == [
        (5, crash, 2),
        (5, crash, 3),
        (15, restart, 2),
        (15, restart, 3),
    ]
    assert [(f.at_s, f.kind, f.node) for f in loaded["f_crashes"].faults] == [
        (5, crash, 0),
        (8, crash, 4),
        (20, restart, 0),
        (20, restart, 4),
    ]
    assert loaded["partition_minority"].faults[0].groups == ((0, 1, 2), (3,))
    assert loaded["partition_majority"].faults[0].groups == ((0, 1, 2, 3), (4, 5, 6))
    assert loaded["partition_primary"].faults[0].groups == ((0,), (1, 2, 3))
    one_way = loaded["one_way_partition"].faults[0]
    assert one_way.one_way and one_way.groups == ((0,), (1, 2, 3))
    assert [(f.node, f.skew_ms) for f in loaded["clock_skew"].faults] == [(0, 30_000), (2, -20_000), (3, 5_000), (0, 0)]
    assert [(f.node, f.behaviour) for f in loaded["twins"].faults] == [(0, Behaviour.TWINS)]
    assert loaded["lossy_reordering"].network == NetworkSpec(4, (5, 100), 0.1, 0.02, 0.5)
    pause = [(f.at_s, f.kind, f.node) for f in loaded["pause_primary"].faults]
    assert pause == [(5, FaultKind.PAUSE, 0), (15, FaultKind.RESUME, 0)]
    behaviours = {name: [f.behaviour for f in loaded[name].faults if f.behaviour] for name in loaded}
    assert behaviours["view_spam"] == [Behaviour.VIEW_SPAM] and behaviours["flood"] == [Behaviour.FLOOD]
    assert behaviours["bad_new_view"] == [Behaviour.BAD_NEW_VIEW] and behaviours["bad_blocks"] == [Behaviour.BAD_BLOCKS]
    assert [(f.at_s, f.kind, f.node) for f in loaded["bad_new_view"].faults][1] == (5, crash, 0), (
        "node 1 is the next view's primary"
    )
    seven = {"f_crashes", "partition_majority", "bad_new_view", "bad_blocks"}
    epochs = {"epoch_add_under_load": (5, 4), "epoch_remove_primary": (5, 5), "epoch_replace_two": (6, 4)}
    assert all(
        (scenario.network.nodes, scenario.network.genesis_validators)
        == epochs.get(name, (7, 7) if name in seven else (4, 4))
        for name, scenario in loaded.items()
    )
    assert [len(loaded[name].changes) for name in epochs] == [1, 1, 2]


def test_a_workload_mix_gives_weights_to_known_kinds() -> None:
    scenario = parse_scenario(with_(("workload", "mix"), {"probe": 2, "record": 0.5, "supply": 0}), "mixed")
    assert scenario.workload.mix == (("probe", 2), ("record", 0.5), ("supply", 0))
    assert parse_scenario(base(), "plain").workload.mix == (("probe", 1.0),)


@pytest.mark.parametrize(
    ("mix", "key", "fragment"),
    [
        ({"consnet": 1}, "workload.mix.consnet", "did you mean 'consent'?"),
        ({"probe": -1}, "workload.mix.probe", "a weight, a number >= 0"),
        ({"probe": 0, "consent": 0}, "workload.mix", "at least one kind a weight > 0"),
        ({}, "workload.mix", "at least one kind a weight > 0"),
        ("probe", "workload.mix", "a table of weights"),
    ],
)
def test_a_bad_workload_mix_is_refused_naming_the_key(mix: Any, key: str, fragment: str) -> None:
    rejects(with_(("workload", "mix"), mix), key, fragment)


# -- validator set changes -------------------------------------------------------------


def with_changes(*changes: dict[str, Any], nodes: int = 6, validators: int | None = 4) -> dict[str, Any]:
    data = with_(("changes",), list(changes))
    data["network"]["nodes"] = nodes
    if validators is not None:
        data["network"]["validators"] = validators
    return data


def test_changes_parse_in_time_order_and_round_trip_through_a_file(tmp_path: Path) -> None:
    data = with_changes({"at": 9, "add": 1, "remove": "primary"}, {"at": 3, "add": 1, "remove": [3]})
    scenario = parse_scenario(data, "changes")
    assert scenario.network.validators == 4 and scenario.network.genesis_validators == 4
    assert scenario.changes == (Change(3.0, 1, (3,)), Change(9.0, 1, (), True))
    path = tmp_path / "changes.toml"
    path.write_text(dump_scenario(scenario))
    assert load_scenario(path) == scenario
    assert parse_scenario(with_changes({"at": 1, "remove": 2}), "one").changes == (Change(1.0, 0, (2,)),)


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ([{"at": 1, "add": 3}], "changes[0].add", "needs 3 node(s) that never were validators, 2 left"),
        ([{"at": 1, "add": 2}, {"at": 2, "add": 1}], "changes[1].add", "raise network.nodes (now 6)"),
        ([{"at": 1, "remove": 4}], "changes[0].remove", "node 4 is not a validator by then"),
        ([{"at": 2, "remove": 3}, {"at": 1, "remove": [3, 2]}], "changes[0].remove", "node 3 is not a validator"),
        ([{"at": 1, "remove": [1, 1]}], "changes[0].remove", "names a node twice"),
        ([{"at": 1, "remove": [0, 1, 2, 3]}], "changes[0].remove", "at least one validator"),
        ([{"at": 1, "remove": "primay"}], "changes[0].remove", 'expected "primary", a node index'),
        ([{"at": 1, "remove": [9]}], "changes[0].remove[0]", "out of range"),
        ([{"at": 1, "remove": []}], "changes[0].remove", "expected"),
        ([{"at": 1}], "changes[0]", "changes nothing"),
        ([{"add": 1}], "changes[0].at", "missing"),
        ([{"at": 31, "add": 1}], "changes[0].at", "out of range"),
        ([{"at": 1, "add": -1}], "changes[0].add", "out of range"),
        ([{"at": 1, "add": True}], "changes[0].add", "expected"),
        ([{"at": 1, "join": 1}], "changes[0].join", "unknown key"),
        ({"at": 1}, "changes", "expected an array of tables"),
    ],
)
def test_bad_changes_are_rejected_naming_the_entry(changes: Any, key: str, fragment: str) -> None:
    data = with_changes(*changes) if isinstance(changes, list) else with_(("changes",), changes)
    rejects(data, key, fragment)


@pytest.mark.parametrize(("validators", "fragment"), [(0, "out of range"), (7, "out of range"), (2.0, "expected")])
def test_genesis_validators_must_be_some_of_the_nodes(validators: Any, fragment: str) -> None:
    rejects(with_changes(nodes=6, validators=validators), "network.validators", fragment)
