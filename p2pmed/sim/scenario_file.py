"""Scenario files: TOML in, a valid ``Scenario`` out, or a ``ScenarioError`` naming the key.

Every input is untrusted. ``load_scenario`` reads and decodes the file;
``parse_scenario`` validates the decoded tables. Any problem (a missing or
unreadable file, invalid TOML, an unknown section or key, a wrong type, a value
out of range, a field the fault kind does not use) raises
``ScenarioError(key, reason)``: ``key`` is the dotted path of the offending
entry (``network.latency_ms``, ``faults[2].node``; ``""`` for the file as a
whole) and ``reason`` says what is wrong and what is expected. No other
exception escapes ``parse_scenario``. The keys, types, ranges and defaults are
documented in ``simulations/README.md``.

``dump_scenario`` writes a ``Scenario`` back as such a file; loading what it
wrote gives back an equal ``Scenario``.
"""

from __future__ import annotations

import datetime
import difflib
import math
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

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

__all__ = [
    "MAX_DURATION_S",
    "MAX_FILE_BYTES",
    "MAX_LATENCY_MS",
    "MAX_LIVENESS_BOUND_S",
    "MAX_NAME_CHARS",
    "MAX_NODES",
    "MAX_RATE",
    "MAX_SKEW_MS",
    "dump_scenario",
    "load_scenario",
    "parse_scenario",
]

MAX_FILE_BYTES = 1 << 20
MAX_NODES = 64
MAX_LATENCY_MS = 60_000
MAX_RATE = 100_000
MAX_DURATION_S = 86_400
MAX_SKEW_MS = 3_600_000
MAX_LIVENESS_BOUND_S = 86_400
MAX_NAME_CHARS = 200

_DEFAULT_NETWORK = NetworkSpec(nodes=1)
_DEFAULT_WORKLOAD = WorkloadSpec()

_SECTIONS = ("network", "workload", "check", "faults", "changes")
_TOP_KEYS = ("name", "description", *_SECTIONS)
_NETWORK_KEYS = ("nodes", "latency_ms", "drop", "duplicate", "reorder", "validators")
_WORKLOAD_KEYS = ("rate", "duration", "mix")
_CHECK_KEYS = ("liveness_bound",)
_CHANGE_KEYS = ("at", "add", "remove")
_FAULT_KEYS = ("at", "kind", "node", "groups", "behaviour", "probability", "latency_ms", "skew_ms", "one_way")

# The fields each fault kind requires, and those it may take; any other field is an error.
KIND_FIELDS: dict[FaultKind, tuple[str, ...]] = {
    FaultKind.CRASH: ("node",),
    FaultKind.RESTART: ("node",),
    FaultKind.PAUSE: ("node",),
    FaultKind.RESUME: ("node",),
    FaultKind.PARTITION: ("groups",),
    FaultKind.HEAL: (),
    FaultKind.BYZANTINE: ("node", "behaviour"),
    FaultKind.DROP: ("probability",),
    FaultKind.DELAY: ("latency_ms",),
    FaultKind.CLOCK_SKEW: ("node", "skew_ms"),
}
KIND_OPTIONAL_FIELDS: dict[FaultKind, tuple[str, ...]] = {FaultKind.PARTITION: ("one_way",)}


# -- reading ---------------------------------------------------------------------


def load_scenario(path: Path) -> Scenario:
    """Read, decode and validate the scenario file at ``path``.

    The scenario's name is the file's ``name`` key, or else the file's stem.
    """
    path = Path(path)
    try:
        with path.open("rb") as fp:
            raw = fp.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ScenarioError(
            "", f"cannot read scenario file {path}: no such file; expected a path to a .toml file"
        ) from None
    except IsADirectoryError:
        raise ScenarioError("", f"cannot read scenario file {path}: it is a directory; expected a .toml file") from None
    except OSError as exc:
        raise ScenarioError("", f"cannot read scenario file {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(
            "", f"scenario file {path} is larger than {MAX_FILE_BYTES} bytes; expected a small TOML file"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            "", f"scenario file {path} is not UTF-8 (bad byte at offset {exc.start}); expected UTF-8 TOML"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError("", f"invalid TOML in {path}: {exc}") from None
    except RecursionError:
        raise ScenarioError("", f"invalid TOML in {path}: nested too deeply") from None
    return parse_scenario(data, path.stem)


def parse_scenario(data: dict[str, Any], name: str) -> Scenario:
    """Validate decoded TOML tables into a ``Scenario``; ``name`` is used unless the data sets ``name``."""
    table = _table(data, "", "the top-level table of a scenario file")
    _check_keys(table, _TOP_KEYS, "")

    network = _network(table["network"]) if "network" in table else None
    if network is None:
        raise ScenarioError("network", "missing section; expected a [network] table with at least 'nodes'")
    workload = _workload(table["workload"]) if "workload" in table else _DEFAULT_WORKLOAD
    liveness_bound_s = _check(table["check"]) if "check" in table else Scenario.liveness_bound_s
    faults = _faults(table["faults"], network.nodes, workload.duration_s) if "faults" in table else ()
    changes = _changes(table["changes"], network, workload.duration_s) if "changes" in table else ()

    if "name" in table:
        name = _name(table["name"])
    if "description" in table and not isinstance(table["description"], str):
        raise ScenarioError("description", f"expected a string, got {_describe(table['description'])}")

    return Scenario(
        name=name,
        network=network,
        workload=workload,
        faults=tuple(sorted(faults, key=lambda fault: fault.at_s)),
        liveness_bound_s=liveness_bound_s,
        changes=tuple(sorted(changes, key=lambda change: change.at_s)),
    )


# -- writing ---------------------------------------------------------------------


def dump_scenario(scenario: Scenario, description: str | None = None) -> str:
    """``scenario`` as TOML text that ``load_scenario`` reads back as an equal ``Scenario``
    (given faults in time order, as ``load_scenario`` produces them)."""
    network, workload = scenario.network, scenario.workload
    lines = [f"name = {_toml_string(scenario.name)}"]
    if description is not None:
        lines.append(f"description = {_toml_string(description)}")
    lines += [
        "",
        "[network]",
        f"nodes = {network.nodes}",
        *([] if network.validators is None else [f"validators = {network.validators}"]),
        f"latency_ms = {_toml_pair(network.latency_ms)}",
        f"drop = {network.drop!r}",
        f"duplicate = {network.duplicate!r}",
        f"reorder = {network.reorder!r}",
        "",
        "[workload]",
        f"rate = {workload.rate!r}",
        f"duration = {workload.duration_s!r}",
        "mix = { " + ", ".join(f"{kind} = {weight!r}" for kind, weight in workload.mix) + " }",
        "",
        "[check]",
        f"liveness_bound = {scenario.liveness_bound_s!r}",
    ]
    for fault in scenario.faults:
        lines += ["", "[[faults]]", f"at = {fault.at_s!r}", f'kind = "{fault.kind.value}"']
        if fault.node is not None:
            lines.append(f"node = {fault.node}")
        if fault.groups:
            lines.append(
                "groups = [" + ", ".join("[" + ", ".join(map(str, group)) + "]" for group in fault.groups) + "]"
            )
        if fault.one_way:
            lines.append("one_way = true")
        if fault.behaviour is not None:
            lines.append(f'behaviour = "{fault.behaviour.value}"')
        if fault.probability is not None:
            lines.append(f"probability = {fault.probability!r}")
        if fault.latency_ms is not None:
            lines.append(f"latency_ms = {_toml_pair(fault.latency_ms)}")
        if fault.skew_ms is not None:
            lines.append(f"skew_ms = {fault.skew_ms}")
    for change in scenario.changes:
        lines += ["", "[[changes]]", f"at = {change.at_s!r}", f"add = {change.add}"]
        if change.remove_primary:
            lines.append('remove = "primary"')
        elif change.remove:
            lines.append("remove = [" + ", ".join(map(str, change.remove)) + "]")
    return "\n".join(lines) + "\n"


def _toml_pair(pair: tuple[int, int]) -> str:
    return f"[{pair[0]}, {pair[1]}]"


def _toml_string(text: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    escaped = "".join(
        f"\\{char}" if char in '"\\' else f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char
        for char in text
    )
    return f'"{escaped}"'


# -- sections --------------------------------------------------------------------


def _network(value: Any) -> NetworkSpec:
    table = _table(value, "network", "a [network] table")
    _check_keys(table, _NETWORK_KEYS, "network")
    if "nodes" not in table:
        raise ScenarioError("network.nodes", f"missing; expected the number of nodes, an integer from 1 to {MAX_NODES}")
    nodes = _int(table["nodes"], "network.nodes", f"an integer from 1 to {MAX_NODES}", lambda v: 1 <= v <= MAX_NODES)
    spec = _DEFAULT_NETWORK
    validators = None
    if "validators" in table:
        validators = _int(
            table["validators"],
            "network.validators",
            f"the number of genesis validators, an integer from 1 to network.nodes ({nodes})",
            lambda v: 1 <= v <= nodes,
        )
    return NetworkSpec(
        nodes=nodes,
        validators=validators,
        latency_ms=_latency(table["latency_ms"], "network.latency_ms") if "latency_ms" in table else spec.latency_ms,
        drop=_probability(table["drop"], "network.drop") if "drop" in table else spec.drop,
        duplicate=_probability(table["duplicate"], "network.duplicate") if "duplicate" in table else spec.duplicate,
        reorder=_probability(table["reorder"], "network.reorder") if "reorder" in table else spec.reorder,
    )


def _workload(value: Any) -> WorkloadSpec:
    table = _table(value, "workload", "a [workload] table")
    _check_keys(table, _WORKLOAD_KEYS, "workload")
    spec = _DEFAULT_WORKLOAD
    rate = spec.rate
    if "rate" in table:
        rate = _number(
            table["rate"],
            "workload.rate",
            f"transactions per second, a number > 0 and <= {MAX_RATE}",
            lambda v: 0 < v <= MAX_RATE,
        )
    duration_s = spec.duration_s
    if "duration" in table:
        duration_s = _number(
            table["duration"],
            "workload.duration",
            f"seconds, a number > 0 and <= {MAX_DURATION_S}",
            lambda v: 0 < v <= MAX_DURATION_S,
        )
    mix = _mix(table["mix"]) if "mix" in table else spec.mix
    return WorkloadSpec(rate=rate, duration_s=duration_s, mix=mix)


def _mix(value: Any) -> tuple[tuple[str, float], ...]:
    table = _table(value, "workload.mix", "a table of weights, e.g. { probe = 2, consent = 1 }")
    _check_keys(table, TX_KINDS, "workload.mix")
    weights = tuple(
        (kind, _number(table[kind], f"workload.mix.{kind}", "a weight, a number >= 0", lambda v: 0 <= v <= MAX_RATE))
        for kind in TX_KINDS
        if kind in table
    )
    if not any(weight > 0 for _, weight in weights):
        raise ScenarioError("workload.mix", "give at least one kind a weight > 0")
    return weights


def _check(value: Any) -> float:
    table = _table(value, "check", "a [check] table")
    _check_keys(table, _CHECK_KEYS, "check")
    if "liveness_bound" not in table:
        return Scenario.liveness_bound_s
    return _number(
        table["liveness_bound"],
        "check.liveness_bound",
        f"seconds, a number > 0 and <= {MAX_LIVENESS_BOUND_S}",
        lambda v: 0 < v <= MAX_LIVENESS_BOUND_S,
    )


def _faults(value: Any, nodes: int, duration_s: float) -> list[Fault]:
    if not isinstance(value, list):
        raise ScenarioError("faults", f"expected an array of tables ([[faults]] entries), got {_describe(value)}")
    faults = [_fault(entry, f"faults[{index}]", nodes, duration_s) for index, entry in enumerate(value)]
    _check_twins_stay_twins(faults)
    return faults


def _changes(value: Any, network: NetworkSpec, duration_s: float) -> list[Change]:
    """The ``[[changes]]`` entries, checked against each other in time order: a removed node
    must be in the set by then, and the nodes voted in must exist outside it."""
    if not isinstance(value, list):
        raise ScenarioError("changes", f"expected an array of tables ([[changes]] entries), got {_describe(value)}")
    changes = [_change(entry, f"changes[{index}]", network.nodes, duration_s) for index, entry in enumerate(value)]
    members = set(range(network.genesis_validators))  # those that may be in the set (a primary left: unknown)
    count = len(members)
    fresh = list(range(network.genesis_validators, network.nodes))
    for index in sorted(range(len(changes)), key=lambda index: changes[index].at_s):
        change, key = changes[index], f"changes[{index}]"
        for node in change.remove:
            if node not in members:
                raise ScenarioError(
                    f"{key}.remove",
                    f"node {node} is not a validator by then (the set is {sorted(members)}); keys are never reused",
                )
        if change.add > len(fresh):
            raise ScenarioError(
                f"{key}.add",
                f"needs {change.add} node(s) that never were validators, {len(fresh)} left: raise network.nodes "
                f"(now {network.nodes}) above network.validators ({network.genesis_validators}) to cover the joiners",
            )
        count += change.add - len(change.remove) - change.remove_primary
        if count < 1:
            raise ScenarioError(f"{key}.remove", "the set after the change must keep at least one validator")
        members = (members - set(change.remove)) | set(fresh[: change.add])
        del fresh[: change.add]
    return changes


def _change(value: Any, key: str, nodes: int, duration_s: float) -> Change:
    table = _table(value, key, "a table with 'at' and 'add' and/or 'remove' (a [[changes]] entry)")
    _check_keys(table, _CHANGE_KEYS, key)
    if "at" not in table:
        raise ScenarioError(f"{key}.at", f"missing; expected the time of the vote in seconds, from 0 to {duration_s:g}")
    at_s = _number(
        table["at"],
        f"{key}.at",
        f"seconds, a number from 0 to the workload duration ({duration_s:g})",
        lambda v: 0 <= v <= duration_s,
    )
    add = 0
    if "add" in table:
        add = _int(table["add"], f"{key}.add", f"a number of nodes to vote in, 0 to {nodes}", lambda v: 0 <= v <= nodes)
    remove, remove_primary = _remove(table["remove"], f"{key}.remove", nodes) if "remove" in table else ((), False)
    if not add and not remove and not remove_primary:
        raise ScenarioError(key, "changes nothing; give 'add' (a number of nodes) and/or 'remove'")
    return Change(at_s, add, remove, remove_primary)


def _remove(value: Any, key: str, nodes: int) -> tuple[tuple[int, ...], bool]:
    expect = f'"primary", a node index or an array of node indices (0 to {nodes - 1}, network.nodes = {nodes})'
    if value == "primary":
        return (), True
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ScenarioError(key, f"expected {expect}, got {_describe(value)}")
    removed = tuple(
        _int(member, f"{key}[{index}]", expect, lambda v: 0 <= v < nodes) for index, member in enumerate(value)
    )
    if len(set(removed)) != len(removed):
        raise ScenarioError(key, f"names a node twice: {list(removed)}")
    return removed, False


def _check_twins_stay_twins(faults: list[Fault]) -> None:
    """A twinned node is two replicas to the end of the run; no later behaviour can replace it."""
    twinned_by: dict[int, int] = {}
    for index in sorted(range(len(faults)), key=lambda index: faults[index].at_s):
        fault = faults[index]
        if fault.kind is not FaultKind.BYZANTINE or fault.node is None:
            continue
        if fault.node in twinned_by and fault.behaviour is not Behaviour.TWINS:
            raise ScenarioError(
                f"faults[{index}].behaviour",
                f"node {fault.node} is already twinned by faults[{twinned_by[fault.node]}]; a twinned node keeps "
                "'twins' to the end of the run",
            )
        if fault.behaviour is Behaviour.TWINS:
            twinned_by.setdefault(fault.node, index)


def _fault(value: Any, key: str, nodes: int, duration_s: float) -> Fault:
    table = _table(value, key, "a table with 'at' and 'kind' (a [[faults]] entry)")
    _check_keys(table, _FAULT_KEYS, key)

    if "kind" not in table:
        raise ScenarioError(f"{key}.kind", f"missing; expected one of: {_listing(FaultKind)}")
    kind = _choice(table["kind"], f"{key}.kind", FaultKind, "fault kind")
    if "at" not in table:
        raise ScenarioError(
            f"{key}.at", f"missing; expected the time of the fault in seconds, from 0 to {duration_s:g}"
        )
    at_s = _number(
        table["at"],
        f"{key}.at",
        f"seconds, a number from 0 to the workload duration ({duration_s:g})",
        lambda v: 0 <= v <= duration_s,
    )

    fields = KIND_FIELDS[kind]
    optional = KIND_OPTIONAL_FIELDS.get(kind, ())
    for field in table:
        if field not in ("at", "kind") and field not in fields and field not in optional:
            raise ScenarioError(f"{key}.{field}", f"not used by a '{kind}' fault; {_takes(kind)}")
    for field in fields:
        if field not in table:
            raise ScenarioError(f"{key}.{field}", f"missing; {_takes(kind)}")

    groups = _groups(table["groups"], f"{key}.groups", nodes) if "groups" in fields else ()
    one_way = _one_way(table["one_way"], f"{key}.one_way", groups) if "one_way" in table else False
    node_range = f"a node index, an integer from 0 to {nodes - 1} (network.nodes = {nodes})"
    return Fault(
        at_s=at_s,
        kind=kind,
        node=_int(table["node"], f"{key}.node", node_range, lambda v: 0 <= v < nodes) if "node" in fields else None,
        groups=groups,
        behaviour=_choice(table["behaviour"], f"{key}.behaviour", Behaviour, "behaviour")
        if "behaviour" in fields
        else None,
        probability=_probability(table["probability"], f"{key}.probability") if "probability" in fields else None,
        latency_ms=_latency(table["latency_ms"], f"{key}.latency_ms") if "latency_ms" in fields else None,
        skew_ms=_int(
            table["skew_ms"],
            f"{key}.skew_ms",
            f"milliseconds, an integer from -{MAX_SKEW_MS} to {MAX_SKEW_MS}",
            lambda v: -MAX_SKEW_MS <= v <= MAX_SKEW_MS,
        )
        if "skew_ms" in fields
        else None,
        one_way=one_way,
    )


def _one_way(value: Any, key: str, groups: tuple[tuple[int, ...], ...]) -> bool:
    if not isinstance(value, bool):
        raise ScenarioError(key, f"expected a boolean (true or false), got {_describe(value)}")
    if value and len(groups) != 2:
        raise ScenarioError(
            key, f"a one-way partition takes exactly two groups [from, to] in 'groups', got {len(groups)}"
        )
    return value


def _takes(kind: FaultKind) -> str:
    fields = KIND_FIELDS[kind]
    if not fields:
        return f"a '{kind}' fault takes only 'at' and 'kind'"
    optional = KIND_OPTIONAL_FIELDS.get(kind, ())
    return (
        f"a '{kind}' fault takes 'at', 'kind' and "
        + ", ".join(f"'{field}'" for field in fields)
        + "".join(f" (optionally '{field}')" for field in optional)
    )


# -- values ----------------------------------------------------------------------


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise ScenarioError("name", f"expected a string, got {_describe(value)}")
    if not value.strip() or len(value) > MAX_NAME_CHARS or not value.isprintable():
        raise ScenarioError(
            "name", f"expected a non-blank printable string of at most {MAX_NAME_CHARS} characters, got {_show(value)}"
        )
    return value


def _latency(value: Any, key: str) -> tuple[int, int]:
    expect = f"an array of two integers [lower, upper] in milliseconds, each from 0 to {MAX_LATENCY_MS}"
    if not isinstance(value, list) or len(value) != 2:
        raise ScenarioError(key, f"expected {expect}, got {_describe(value)}")
    bound = f"milliseconds, an integer from 0 to {MAX_LATENCY_MS}"
    lower = _int(value[0], f"{key}[0]", bound, lambda v: 0 <= v <= MAX_LATENCY_MS)
    upper = _int(value[1], f"{key}[1]", bound, lambda v: 0 <= v <= MAX_LATENCY_MS)
    if lower > upper:
        raise ScenarioError(
            key, f"lower bound {lower} is greater than upper bound {upper}; expected [lower, upper] with lower <= upper"
        )
    return lower, upper


def _groups(value: Any, key: str, nodes: int) -> tuple[tuple[int, ...], ...]:
    if not isinstance(value, list) or not value:
        raise ScenarioError(
            key, f"expected a non-empty array of arrays of node indices, e.g. [[0, 1], [2, 3]], got {_describe(value)}"
        )
    node_range = f"a node index, an integer from 0 to {nodes - 1} (network.nodes = {nodes})"
    seen: dict[int, str] = {}
    groups = []
    for group_index, group in enumerate(value):
        group_key = f"{key}[{group_index}]"
        if not isinstance(group, list) or not group:
            raise ScenarioError(group_key, f"expected a non-empty array of node indices, got {_describe(group)}")
        members = []
        for member_index, member in enumerate(group):
            member_key = f"{group_key}[{member_index}]"
            node = _int(member, member_key, node_range, lambda v: 0 <= v < nodes)
            if node in seen:
                raise ScenarioError(
                    member_key, f"node {node} is already in {seen[node]}; each node may be in at most one group"
                )
            seen[node] = group_key
            members.append(node)
        groups.append(tuple(members))
    return tuple(groups)


def _probability(value: Any, key: str) -> float:
    return _number(value, key, "a probability, a number from 0 to 1", lambda v: 0 <= v <= 1)


def _int(value: Any, key: str, expect: str, in_range: Callable[[int], bool]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(key, f"expected {expect}, got {_describe(value)}")
    if not in_range(value):
        raise ScenarioError(key, f"{_show(value)} is out of range; expected {expect}")
    return value


def _number(value: Any, key: str, expect: str, in_range: Callable[[float], bool]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(key, f"expected {expect}, got {_describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ScenarioError(key, f"{_show(value)} is not a finite number; expected {expect}")
    if not in_range(value):
        raise ScenarioError(key, f"{_show(value)} is out of range; expected {expect}")
    return float(value)


def _choice(value: Any, key: str, enum_type: Any, what: str) -> Any:
    if not isinstance(value, str):
        raise ScenarioError(key, f"expected a string, one of: {_listing(enum_type)}; got {_describe(value)}")
    try:
        return enum_type(value)
    except ValueError:
        pass
    options = [member.value for member in enum_type]
    close = difflib.get_close_matches(value, options, n=1)
    hint = f" did you mean '{close[0]}'?" if close else ""
    raise ScenarioError(key, f"unknown {what} {_show(value)};{hint} expected one of: {_listing(enum_type)}")


# -- tables and keys -------------------------------------------------------------


def _table(value: Any, key: str, expect: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ScenarioError(key, f"expected {expect}, got {_describe(value)}")
    return value


def _check_keys(table: Mapping[Any, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key, value in table.items():
        if not isinstance(key, str):
            raise ScenarioError(prefix, f"keys must be strings, got {_describe(key)}")
        if key in allowed:
            continue
        what = "section" if not prefix and (isinstance(value, dict) or _is_table_array(value)) else "key"
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" did you mean '{close[0]}'?" if close else ""
        raise ScenarioError(
            f"{prefix}.{key}" if prefix else key,
            f"unknown {what};{hint} expected one of: " + ", ".join(allowed),
        )


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _listing(options: Iterable[Any]) -> str:
    return ", ".join(str(option) for option in options)


_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "float"),
    (str, "string"),
    (list, "array"),
    (dict, "table"),
    (datetime.datetime, "datetime"),
    (datetime.date, "date"),
    (datetime.time, "time"),
)


def _describe(value: Any) -> str:
    """``value`` as '<TOML type> <short repr>' for an error message."""
    for python_type, toml_name in _TOML_TYPES:
        if isinstance(value, python_type):
            if isinstance(value, list | dict):
                return f"{toml_name} of {len(value)} item{'s' if len(value) != 1 else ''}"
            return f"{toml_name} {_show(value)}"
    return type(value).__name__


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "...'"
    return repr(value)[:60]
