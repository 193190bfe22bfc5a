"""``p2pmed sim run --mode real``: a scenario played on real node processes on 127.0.0.1.

The same scenario file and the same ``report.json`` as the simulator, but the
faults are real: a crash is SIGKILL, a restart starts the process again on its
store, partitions, loss and delay go through each node's fault-injection
wrapper (``debug.faults``, enabled in these nodes' config only). The workload is
signed transactions of the scenario's mix (``p2pmed.sim.workload``; patients are
registered before the clock starts) submitted over RPC to the live nodes in turn,
open loop at the scenario's rate. A transaction can be lost in two ways: its send
fails (no node up, or the node dies under the call), or the node that took it is
killed before gossip spread it. The harness sends those again every
``RESEND_S``, as a client would, because a sender's later nonces wait for every
earlier one; once the workload and the faults are over it also sends every
uncommitted transaction again now and then. It does not resend everything on a
timer, as the simulator's client does: on real processes a backlog resent every
few seconds is a load of its own. A transaction's latency runs from its first
send to when the first node announces its block on ``chain.subscribe``.

Checkers: safety holds when every pair of nodes has the same block at every
height both reached (compared over RPC at the end); liveness, when the faults
leave at most f nodes down and the network whole, holds when every submitted
transaction is committed on every live node within the scenario's bound after
the workload ends.

Not every fault can be played on real processes: Byzantine behaviours and
clock skew need the simulator, and the network model's duplicate and reorder
rates have no counterpart in the wrapper. A scenario that asks for them is
refused with ``ScenarioError`` naming the fault, before anything starts.
Unlike the simulator, a run does not replay exactly: the seed fixes the
transactions and the wrapper's random drops, not the operating system's timing.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from p2pmed.ledger.tx import Transaction
from p2pmed.rpc.client import NodeNotRunning, RpcClient, RpcError
from p2pmed.sim.scenario import Fault, FaultKind, Scenario, ScenarioError
from p2pmed.sim.simulator import fault_details
from p2pmed.sim.workload import build_workload
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import load_home
from p2pmed.stats import percentiles
from p2pmed.testing.process_network import NodeFailed, ProcessNetwork

__all__ = ["check_playable", "run_real"]

CONFIG = NodeConfig(
    log_format="json",
    request_timeout_ms=1_500,
    view_change_timeout_ms=1_500,
    fault_injection=True,
    probes_from_anyone=True,
)
CHAIN_ID = "p2pmed-harness"
SAMPLE_S = 1.0
RESEND_S = 3.0
"""How often transactions that may be lost are sent again."""
START_TIMEOUT_S = 60.0
PLAYABLE = {
    FaultKind.CRASH,
    FaultKind.RESTART,
    FaultKind.PAUSE,
    FaultKind.RESUME,
    FaultKind.PARTITION,
    FaultKind.HEAL,
    FaultKind.DROP,
    FaultKind.DELAY,
}


def check_playable(scenario: Scenario) -> None:
    """Raise ``ScenarioError`` for anything real processes cannot do."""
    for name in ("duplicate", "reorder"):
        if getattr(scenario.network, name):
            raise ScenarioError(f"network.{name}", "has no counterpart on real processes; use --mode sim")
    if scenario.network.genesis_validators != scenario.network.nodes or scenario.changes:
        key = "changes" if scenario.changes else "network.validators"
        raise ScenarioError(key, "validator set changes and nodes outside the set need the simulator; use --mode sim")
    for position, fault in enumerate(scenario.faults):
        if fault.kind not in PLAYABLE:
            # ``position`` counts faults in time order, which may differ from the file's: say the time too.
            raise ScenarioError(
                f"faults[{position}].kind",
                f"{fault.kind.value!r} (at {fault.at_s:g} s) needs the simulator; use --mode sim",
            )


@dataclasses.dataclass
class Links:
    """Each node's fault-injection settings, from the scenario's current state."""

    drop: float
    delay_ms: int
    groups: tuple[tuple[int, ...], ...] | None = None
    one_way: bool = False

    def rules_for(self, node: int, nodes: int) -> dict[str, Any]:
        blocked_out, blocked_in = self._blocked(node, nodes)
        return {
            "drop_permille": round(self.drop * 1000),
            "delay_ms": self.delay_ms,
            "blocked_out": ",".join(str(index) for index in sorted(blocked_out)),
            "blocked_in": ",".join(str(index) for index in sorted(blocked_in)),
        }

    def _blocked(self, node: int, nodes: int) -> tuple[set[int], set[int]]:
        """Whom ``node`` may not send to, and whom it may not hear."""
        if self.groups is None:
            return set(), set()
        if self.one_way:
            senders, receivers = self.groups
            return set(receivers) if node in senders else set(), set(senders) if node in receivers else set()
        mine = next((set(group) for group in self.groups if node in group), {node})
        return set(range(nodes)) - mine, set(range(nodes)) - mine


class _CommitWatcher:
    """First time any node announces each transaction, from a thread per node that
    re-subscribes whenever its node restarts."""

    def __init__(self, net: ProcessNetwork) -> None:
        self.committed_at: dict[str, float] = {}
        self.seen_by: list[set[str]] = [set() for _ in range(net.size)]
        self.refused_by_height: dict[int, int] = {}
        """How many of each block's transactions the ledger's rules refused."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(net, index), daemon=True) for index in range(net.size)
        ]
        for thread in self._threads:
            thread.start()

    def _watch(self, net: ProcessNetwork, index: int) -> None:
        while not self._stop.is_set():
            try:
                with RpcClient(net.homes[index] / CONFIG.rpc_socket, timeout=2).subscribe("chain.subscribe") as blocks:
                    for block in blocks:
                        now = time.monotonic()
                        with self._lock:
                            for tx_id in block["tx_ids"]:
                                self.committed_at.setdefault(tx_id, now)
                            self.refused_by_height.setdefault(block["height"], block["rejected"])
                            self.seen_by[index].update(block["tx_ids"])
                        if self._stop.is_set():
                            return
            except (NodeNotRunning, RpcError, OSError):
                pass
            self._stop.wait(0.2)

    def close(self) -> None:
        self._stop.set()  # threads end at their next block or retry; they are daemons


def run_real(
    scenario: Scenario, seed: int, logs: Path, progress: Callable[[float], None] | None = None
) -> dict[str, Any]:
    """Play ``scenario`` on real processes; returns the report. The nodes' logs are
    copied into ``logs``; their homes live in a short temporary directory (a Unix
    socket path has to fit in 108 bytes) removed at the end."""
    check_playable(scenario)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="p2pmed-real-") as directory:
        try:
            report = _run_in(Path(directory), scenario, seed, progress)
        finally:
            logs.mkdir(parents=True, exist_ok=True)
            for log in Path(directory).glob("node*.log"):
                shutil.copy(log, logs / log.name)
    report.update({"seed": seed, "mode": "real", "wall_s": round(time.monotonic() - started, 3)})
    return report


def _run_in(directory: Path, scenario: Scenario, seed: int, progress: Callable[[float], None] | None) -> dict[str, Any]:
    with ProcessNetwork(directory, scenario.network.nodes, CONFIG, CHAIN_ID) as net:
        net.start_all(START_TIMEOUT_S)
        sites = [load_home(home).key for home in net.homes]
        count = int(scenario.workload.rate * scenario.workload.duration_s)
        rng = random.Random(seed)
        workload = build_workload(CHAIN_ID, count, scenario.workload.mix, sites, rng)
        _commit_setup(net, workload.setup)
        links = Links(scenario.network.drop, _mean(scenario.network.latency_ms))
        _apply_links(net, links)
        return _Run(net, scenario, workload.txs, links, progress).play(rng)


def _commit_setup(net: ProcessNetwork, setup: list[Transaction]) -> None:
    """Commit what the workload needs in place (the patients) before the clock starts."""
    for tx in setup:
        net.call(0, "tx.submit", tx=tx.encoded.hex())
    for tx in setup[-1:]:

        def committed(tx: Transaction = tx) -> bool:
            status: str = net.call(0, "tx.get", tx_id=tx.id.hex())["status"]
            return status == "committed"

        net.wait_for(0, committed, START_TIMEOUT_S, "to commit the workload's setup")


class _Run:
    def __init__(
        self,
        net: ProcessNetwork,
        scenario: Scenario,
        txs: list[Transaction],
        links: Links,
        progress: Callable[[float], None] | None,
    ) -> None:
        self.net, self.scenario, self.txs, self.links, self.progress = net, scenario, txs, links, progress
        self.encoded = {tx.id.hex(): tx.encoded.hex() for tx in txs}
        """Each transaction as ``tx.submit`` takes it, by id, made once for every send and resend."""
        self.submitted_at: dict[str, float] = {}
        self.fault_log: list[dict[str, Any]] = []
        self.timeline: list[dict[str, Any]] = []
        self.failed_sends = 0
        self.resubmitted = 0
        self.paused: set[int] = set()
        self.held_by: dict[str, int | None] = {}
        """The node each transaction was last handed to; None when it may be lost."""

    def play(self, rng: random.Random) -> dict[str, Any]:
        watcher = _CommitWatcher(self.net)
        self.start = time.monotonic()
        faults = sorted(self.scenario.faults, key=lambda fault: fault.at_s)
        rate = self.scenario.workload.rate
        next_tx, next_sample, next_resend, end = 0, 0.0, RESEND_S, self.scenario.workload.duration_s
        try:
            while True:
                elapsed = time.monotonic() - self.start
                while faults and faults[0].at_s <= elapsed:
                    self._inject(faults.pop(0), elapsed)
                while next_tx < len(self.txs) and next_tx / rate <= elapsed:
                    self._submit(self.txs[next_tx], rng)
                    next_tx += 1
                if elapsed >= next_sample:
                    self._sample(elapsed)
                    next_sample += SAMPLE_S
                if elapsed >= next_resend:
                    self._resubmit(watcher, rng)
                    next_resend += RESEND_S
                if elapsed >= end and not faults and next_tx >= len(self.txs):
                    break
                if self.progress is not None:
                    self.progress(min(1.0, elapsed / max(end, 1e-9)))
                time.sleep(0.002)
            calm = time.monotonic() - self.start
            liveness_expected = self._liveness_expected()
            live = self._live()
            deadline = time.monotonic() + self.scenario.liveness_bound_s
            # The feeds say cheaply when everything is in; a restarted node's feed misses
            # what it caught up on before re-subscribing, so the chains are read now and then.
            missing = self._missing(live)
            rounds = 0
            while liveness_expected and any(missing.values()) and time.monotonic() < deadline:
                if rounds % 5 == 0:
                    self._resubmit(watcher, rng, everything=True)
                self._sample(time.monotonic() - self.start)
                time.sleep(SAMPLE_S)
                rounds += 1
                fed = all(self.submitted_at.keys() <= watcher.seen_by[index] for index in live)
                if fed or rounds % 5 == 0:
                    missing = self._missing(live)
            self._sample(time.monotonic() - self.start)
            return self._report(watcher, calm, liveness_expected, missing)
        finally:
            watcher.close()

    def _inject(self, fault: Fault, elapsed: float) -> None:
        self.fault_log.append(
            {"at_s": fault.at_s, "kind": fault.kind.value, **fault_details(fault), "played_at_s": round(elapsed, 3)}
        )
        net = self.net
        if fault.kind is FaultKind.CRASH:
            assert fault.node is not None
            if net.processes[fault.node] is not None:
                net.kill(fault.node)
                self.paused.discard(fault.node)
                for tx_id, holder in self.held_by.items():
                    if holder == fault.node:
                        self.held_by[tx_id] = None
            return
        if fault.kind is FaultKind.PAUSE:
            assert fault.node is not None
            if fault.node in self._live():
                net.pause(fault.node)
                self.paused.add(fault.node)
            return
        if fault.kind is FaultKind.RESUME:
            assert fault.node is not None
            if fault.node in self.paused:
                net.resume(fault.node)
                self.paused.discard(fault.node)
                _apply_links(net, self.links, [fault.node])  # what changed while it slept
            return
        if fault.kind is FaultKind.RESTART:
            assert fault.node is not None
            if net.processes[fault.node] is None:
                net.start(fault.node)
                net.wait_ready(fault.node, START_TIMEOUT_S)
                _apply_links(net, self.links, [fault.node])
            return
        if fault.kind is FaultKind.PARTITION:
            self.links.groups, self.links.one_way = fault.groups, fault.one_way
        elif fault.kind is FaultKind.HEAL:
            self.links.groups, self.links.one_way = None, False
        elif fault.kind is FaultKind.DROP:
            assert fault.probability is not None
            self.links.drop = fault.probability
        elif fault.kind is FaultKind.DELAY:
            assert fault.latency_ms is not None
            self.links.delay_ms = _mean(fault.latency_ms)
        _apply_links(net, self.links, self._live())

    def _submit(self, tx: Transaction, rng: random.Random) -> None:
        self.submitted_at[tx.id.hex()] = time.monotonic()
        if not self._send(tx.id.hex(), rng):
            self.failed_sends += 1

    def _send(self, tx_id: str, rng: random.Random) -> bool:
        """Hand a transaction to a live node; remember which, or that none took it."""
        live = self._live()
        node = rng.choice(live) if live else None
        if node is not None:
            try:
                self.net.call(node, "tx.submit", tx=self.encoded[tx_id])
            except RpcError as error:  # a duplicate: that node, or another, has it already
                node = node if isinstance(error.data, dict) and error.data.get("reason") == "duplicate" else None
            except (NodeNotRunning, OSError):  # it died under us
                node = None
        self.held_by[tx_id] = node
        return node is not None

    def _resubmit(self, watcher: _CommitWatcher, rng: random.Random, everything: bool = False) -> None:
        """Send again what may be lost (or, with ``everything``, whatever has not committed)."""
        for tx_id in list(self.submitted_at):
            if tx_id not in watcher.committed_at and (everything or self.held_by.get(tx_id) is None):
                if self._send(tx_id, rng):
                    self.resubmitted += 1
                elif not self._live():
                    return

    def _sample(self, elapsed: float) -> None:
        for index in range(self.net.size):
            row: dict[str, Any] = {"t_s": round(elapsed, 3), "node": index, "height": None, "view": None, "up": False}
            if index in self._live():  # a paused node cannot answer: a gap in its lines
                try:
                    status = self.net.call(index, "node.status")
                    row.update(height=status["height"], view=status["view"], up=True)
                except (NodeNotRunning, RpcError, OSError):
                    pass
            self.timeline.append(row)

    def _live(self) -> list[int]:
        """Nodes running and not paused: those that can answer."""
        return [
            index
            for index, process in enumerate(self.net.processes)
            if process is not None and index not in self.paused
        ]

    def _liveness_expected(self) -> bool:
        f = (self.net.size - 1) // 3
        return self.net.size - len(self._live()) <= f and self.links.groups is None and self.links.drop < 1

    def _missing(self, live: list[int]) -> dict[int, int]:
        missing = {}
        for index in live:
            try:
                height = self.net.call(index, "node.status")["height"]
                committed = {
                    tx_id
                    for h in range(1, height + 1)
                    for tx_id in self.net.call(index, "chain.block", height=h)["tx_ids"]
                }
            except (NodeNotRunning, RpcError, OSError, NodeFailed):
                missing[index] = len(self.submitted_at)
                continue
            missing[index] = sum(1 for tx_id in self.submitted_at if tx_id not in committed)
        return missing

    def _report(self, watcher: _CommitWatcher, calm: float, expected: bool, missing: dict[int, int]) -> dict[str, Any]:
        violations = self._compare_chains()
        latencies = sorted(
            round((watcher.committed_at[tx_id] - at) * 1000)
            for tx_id, at in self.submitted_at.items()
            if tx_id in watcher.committed_at
        )
        stuck = {str(index): count for index, count in missing.items() if count}
        end = time.monotonic() - self.start
        return {
            "scenario": self.scenario.name,
            "nodes": self.net.size,
            "f": (self.net.size - 1) // 3,
            "faults": self.fault_log,
            "submitted_txs": len(self.submitted_at),
            "failed_sends": self.failed_sends,
            "resubmitted_txs": self.resubmitted,
            "committed_txs": sum(1 for tx_id in self.submitted_at if tx_id in watcher.committed_at),
            "refused_by_rules_txs": sum(watcher.refused_by_height.values()),
            "submitted_by_type": dict(
                sorted(Counter(tx.type for tx in self.txs if tx.id.hex() in self.submitted_at).items())
            ),
            "safety": {"ok": not violations, "violations": violations},
            "liveness": {
                "ok": not stuck if expected else None,
                "expected": expected,
                "bound_s": self.scenario.liveness_bound_s,
                "uncommitted_by_node": stuck,
                "detail": "every submitted transaction committed on every live node"
                if expected and not stuck
                else f"uncommitted by node: {stuck}"
                if expected
                else "not expected: more than f nodes down or the network split",
            },
            "view_changes": max((row["view"] or 0 for row in self.timeline), default=0),
            "latency_ms": percentiles(latencies),
            "heights": {str(row["node"]): row["height"] for row in self.timeline[-self.net.size :]},
            "simulated_s": round(end, 3),
            "calm_at_s": round(calm, 3),
            "series": self._per_second(watcher, end),
            "timeline": self.timeline,
        }

    def _compare_chains(self) -> list[dict[str, Any]]:
        chains: dict[int, list[str]] = {}
        for index in self._live():
            height = self.net.call(index, "node.status")["height"]
            chains[index] = [self.net.call(index, "chain.block", height=h)["hash"] for h in range(1, height + 1)]
        violations = []
        reference_index, reference = next(iter(chains.items()), (None, []))
        for index, chain in chains.items():
            for height, (mine, theirs) in enumerate(zip(chain, reference, strict=False), start=1):
                if mine != theirs:
                    violations.append(
                        {
                            "kind": "fork",
                            "node": index,
                            "height": height,
                            "detail": f"node {index} has {mine[:16]} at {height}, node {reference_index} {theirs[:16]}",
                        }
                    )
                    break
        return violations

    def _per_second(self, watcher: _CommitWatcher, end: float) -> list[dict[str, Any]]:
        buckets: dict[int, list[int]] = {}
        for tx_id, at in self.submitted_at.items():
            if tx_id in watcher.committed_at:
                committed = watcher.committed_at[tx_id]
                buckets.setdefault(int(committed - self.start), []).append(round((committed - at) * 1000))
        series = []
        for second in range(int(end) + 1):
            latencies = sorted(buckets.get(second, []))
            cuts = percentiles(latencies)
            series.append(
                {
                    "t_s": second,
                    "committed": len(latencies),
                    "latency_p50_ms": cuts["p50"],
                    "latency_p99_ms": cuts["p99"],
                }
            )
        return series


def _apply_links(net: ProcessNetwork, links: Links, nodes: list[int] | None = None) -> None:
    for index in nodes if nodes is not None else range(net.size):
        if net.processes[index] is not None:
            try:
                net.call(index, "debug.faults", **links.rules_for(index, net.size))
            except (NodeNotRunning, RpcError, OSError):
                pass  # it died; a restart applies the links again


def _mean(bounds: tuple[int, int]) -> int:
    return (bounds[0] + bounds[1]) // 2
