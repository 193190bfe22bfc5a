"""The deterministic simulator: real PBFT replicas, a virtual clock, a hostile network.

One ``random.Random(seed)`` drives every choice: message latency, loss,
duplication, reordering, workload jitter, Byzantine mischief. Events (message
deliveries, replica ticks, client submissions, faults) sit in a heap ordered by
(virtual time, insertion counter), so the same seed replays the same event
trace byte for byte; ``trace_sha256`` in the result proves it.

A crashed node loses everything but what its replica persisted (``Persist``
records) and the blocks it committed (its store). A restarted node rebuilds its
replica from exactly that. A paused node (SIGSTOP) keeps its memory but does
nothing: messages to it wait, in order, and reach it when it resumes, its timers
late. Clock skew shifts what a node's replica believes the
time is. A twinned node (``byzantine`` with ``twins``) is two such replicas with
one key, each reached by its own half of the network. Checkers watch every
commit (safety) and the end state (liveness).
"""

from __future__ import annotations

import hashlib
import heapq
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from p2pmed import codec
from p2pmed.consensus.actions import Action, Broadcast, CommitBlock, Persist, Send, ServeBlocks
from p2pmed.consensus.certificates import Validators
from p2pmed.consensus.messages import Blocks, BlockWithCertificate, CommitCertificate, Message, blocks_answer
from p2pmed.consensus.replica import Replica, ReplicaConfig
from p2pmed.crypto import SignatureDomain
from p2pmed.ledger.block import GENESIS_PARENT_HASH, Block
from p2pmed.ledger.tx import Transaction, UnsignedTransaction
from p2pmed.sim.byzantine import ByzantineBehaviour, twin_sides
from p2pmed.sim.checkers import SafetyChecker
from p2pmed.sim.fastsig import FastSigner, FastVerifier
from p2pmed.sim.network import SimNetwork
from p2pmed.sim.planted import planted_quorum
from p2pmed.sim.scenario import Behaviour, Fault, FaultKind, Scenario
from p2pmed.stats import percentiles

__all__ = ["SimulationResult", "fault_details", "run_simulation"]

CHAIN_ID = "p2pmed-sim"
CLIENT = -1
CLIENT_RESEND_MS = 3_000
SAMPLE_INTERVAL_MS = 1_000
DONE_CHECK_INTERVAL_MS = 500
EVENTS_MAX = 20_000_000


@dataclass
class SimNode:
    index: int
    signer: FastSigner
    replica: Replica | None = None
    records: dict[str, bytes] = field(default_factory=dict)
    chain: list[tuple[Block, CommitCertificate]] = field(default_factory=list)
    executed: set[bytes] = field(default_factory=set)
    skew_ms: int = 0
    byzantine: ByzantineBehaviour | None = None
    tick_at: int | None = None
    twin: SimNode | None = None
    paused: bool = False
    held: list[tuple[int, Any]] = field(default_factory=list)

    @property
    def head_hash(self) -> bytes:
        return self.chain[-1][0].hash if self.chain else GENESIS_PARENT_HASH


@dataclass
class SimulationResult:
    report: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.report["safety"]["ok"] and self.report["liveness"]["ok"] is not False)


def run_simulation(
    scenario: Scenario,
    seed: int,
    *,
    config: ReplicaConfig | None = None,
    quorum_override: int | None = None,
    replica_class: type[Replica] = Replica,
    progress: Callable[[float], None] | None = None,
) -> SimulationResult:
    """Run one seeded simulation. ``quorum_override`` and ``replica_class`` exist for
    negative controls: tests plant a bug and check that the checkers catch it. Without
    ``quorum_override``, the test-only environment switch of ``p2pmed.sim.planted`` may set it.
    ``progress`` hears the share of the longest possible run simulated so far, once a simulated second."""
    if quorum_override is None:
        quorum_override = planted_quorum(scenario.network.nodes)
    simulation = Simulation(scenario, seed, config or ReplicaConfig(), quorum_override, replica_class)
    simulation.progress = progress
    return simulation.run()


class Simulation:
    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        config: ReplicaConfig,
        quorum_override: int | None = None,
        replica_class: type[Replica] = Replica,
    ) -> None:
        self.scenario, self.seed, self.config = scenario, seed, config
        self.quorum_override = quorum_override
        self.replica_class = replica_class
        self.rng = random.Random(seed)
        n = scenario.network.nodes
        signers = [FastSigner(hashlib.sha256(f"sim-validator-{seed}-{i}".encode()).digest()) for i in range(n)]
        self.client = FastSigner(hashlib.sha256(f"sim-client-{seed}".encode()).digest())
        self.verifier = FastVerifier([*signers, self.client])
        self.validators = Validators(CHAIN_ID, tuple(s.public_key for s in signers), self.verifier, quorum_override)
        self.network = SimNetwork.from_spec(scenario.network, self.rng)
        self.nodes = [SimNode(i, signer) for i, signer in enumerate(signers)]
        # The checker counts votes with its own quorum, never a planted one.
        honest_quorum = Validators(CHAIN_ID, self.validators.keys, self.verifier)
        self.checker = SafetyChecker(honest_quorum, config.block_time_skew_max_ms)
        self.now = 0
        self.step = 0
        self._queue: list[tuple[int, int, str, Any]] = []
        self._counter = 0
        self._serial = 0
        self._trace = hashlib.sha256()
        self.submitted: dict[bytes, int] = {}
        self.txs: dict[bytes, Transaction] = {}
        self.committed_at: dict[bytes, int] = {}
        self.timeline: list[dict[str, Any]] = []
        self.fault_log: list[dict[str, Any]] = []
        self.progress: Callable[[float], None] | None = None
        self._end_ms = 1

    # -- event queue ----------------------------------------------------------

    def _schedule(self, at_ms: int, kind: str, payload: Any) -> None:
        self._counter += 1
        heapq.heappush(self._queue, (at_ms, self._counter, kind, payload))

    def run(self) -> SimulationResult:
        started = time.perf_counter()
        for node in self.nodes:
            self._start_replica(node)
        workload_end_ms = int(self.scenario.workload.duration_s * 1000)
        self._schedule_workload(workload_end_ms)
        for fault in self.scenario.faults:
            self._schedule(int(fault.at_s * 1000), "fault", fault)
        calm_ms = max([workload_end_ms, *(int(f.at_s * 1000) for f in self.scenario.faults)])
        end_ms = self._end_ms = calm_ms + int(self.scenario.liveness_bound_s * 1000)
        self._schedule(calm_ms, "done?", None)
        self._schedule(0, "sample", None)
        self._schedule(CLIENT_RESEND_MS, "resend", None)
        while self._queue and self.step < EVENTS_MAX:
            at_ms, _, kind, payload = heapq.heappop(self._queue)
            if at_ms > end_ms:
                break
            self.now = at_ms
            self.step += 1
            if kind == "done?":
                if self._all_committed():
                    break
                self._schedule(at_ms + DONE_CHECK_INTERVAL_MS, "done?", None)
                continue
            try:
                self._handle(kind, payload)
            except AssertionError as error:
                # A replica caught itself breaking an invariant: a bug, reported like a violation.
                self.checker.report("assertion", self.step, self.now / 1000, -1, str(error) or repr(error))
                break
        return self._result(time.perf_counter() - started, calm_ms)

    def _handle(self, kind: str, payload: Any) -> None:
        if kind == "deliver":
            source, destination, data, serial = payload
            self._trace.update(b"d%d|%d|%d|%d" % (self.now, source, destination, serial))
            for node in self._receivers(source, destination):
                if node.paused:
                    node.held.append((source, data))
                elif node.replica is not None:
                    self._deliver(node, source, data)
        elif kind == "tick":
            node = payload
            if node.replica is not None and node.tick_at == self.now and not node.paused:
                node.tick_at = None
                self._trace.update(b"t%d|%d" % (self.now, node.index))
                self._carry_out(node, node.replica.tick(self._local(node)))
        elif kind == "submit":
            self._submit(payload)
        elif kind == "resend":
            self._resend()
        elif kind == "sample":
            self._sample()
        elif kind == "fault":
            self._apply_fault(payload)

    # -- nodes ------------------------------------------------------------------

    def _deliver(self, node: SimNode, source: int, data: Any) -> None:
        """``data``: a tx id from the client, raw bytes from a Byzantine node, else a message."""
        assert node.replica is not None
        local = self._local(node)
        if source == CLIENT:
            actions = node.replica.submit(self.txs[data], local)
        elif isinstance(data, bytes):
            actions = node.replica.receive(source, data, local)
        else:
            actions = node.replica.deliver(source, data, local)
        self._carry_out(node, actions)

    def _receivers(self, source: int, destination: int) -> list[SimNode]:
        """The copies of ``destination`` that a message from ``source`` reaches: the
        node itself unless it is twinned; each client submission reaches one twin or
        the other, so the two copies propose different batches."""
        node = self.nodes[destination]
        twin = node.twin
        if twin is None:
            return [node]
        if source == CLIENT:
            return [twin] if self.rng.random() < 0.5 else [node]
        assert twin.byzantine is not None
        return [twin] if source in twin.byzantine.reach else [node]

    def _local(self, node: SimNode) -> int:
        return max(0, self.now + node.skew_ms)

    def _start_replica(self, node: SimNode) -> None:
        node.replica = self.replica_class(
            self.validators,
            node.signer,
            self.config,
            self._tx_check,
            now_ms=self._local(node),
            last_executed=len(node.chain),
            last_block_hash=node.head_hash,
            last_block_time_ms=node.chain[-1][0].header.time_ms if node.chain else 0,
            records=dict(node.records),
            committed_tx_ids=[tx.id for block, _ in node.chain for tx in block.txs],
        )
        node.tick_at = None
        self._carry_out(node, node.replica.start(self._local(node)))

    def _tx_check(self, tx: Transaction) -> bool:
        return self.verifier.verify(
            tx.sender, tx.signature, SignatureDomain.TRANSACTION, tx.chain_id, tx.signing_payload()
        )

    def _carry_out(self, node: SimNode, actions: list[Action]) -> None:
        outgoing: list[tuple[int, Message]] = []
        for action in actions:
            if isinstance(action, Persist):
                for key, value in action.records.items():
                    if value is None:
                        node.records.pop(key, None)
                    else:
                        node.records[key] = value
            elif isinstance(action, Send):
                outgoing.append((action.to, action.message))
            elif isinstance(action, Broadcast):
                outgoing.extend((other.index, action.message) for other in self.nodes if other.index != node.index)
            elif isinstance(action, CommitBlock):
                self._commit(node, action.block, action.certificate)
            elif isinstance(action, ServeBlocks):
                outgoing.append((action.to, self._serve(node, action.from_height)))
        self._send(node, outgoing)
        self._schedule_tick(node)

    def _send(self, node: SimNode, outgoing: list[tuple[int, Message]]) -> None:
        """Honest nodes hand over message objects (frozen, shared by all receivers, which
        still verify every signature); a Byzantine node's output goes as raw bytes."""
        wire: list[tuple[int, Message | bytes]] = list(outgoing)
        if node.byzantine is not None:
            wire = list(node.byzantine.outgoing(outgoing))
        for destination, data in wire:
            self._serial += 1
            for delay in self.network.delivery_delays_ms(node.index, destination):
                self._schedule(self.now + delay, "deliver", (node.index, destination, data, self._serial))

    def _schedule_tick(self, node: SimNode) -> None:
        if node.replica is None:
            return
        at = max(self.now, node.replica.next_deadline_ms() - node.skew_ms)
        if node.tick_at is None or at < node.tick_at:
            node.tick_at = at
            self._schedule(at, "tick", node)

    def _serve(self, node: SimNode, from_height: int) -> Blocks:
        chain = node.chain[from_height - 1 :] if from_height >= 1 else []
        return blocks_answer(BlockWithCertificate(block, certificate) for block, certificate in chain)

    def _commit(self, node: SimNode, block: Block, certificate: CommitCertificate) -> None:
        assert block.height == len(node.chain) + 1 and block.header.previous_hash == node.head_hash
        node.chain.append((block, certificate))
        self._trace.update(b"c%d|%d|" % (self.now, node.index) + block.hash)
        if node.byzantine is not None:
            return
        honest_clock_ms = max(self._local(other) for other in self.nodes if other.byzantine is None)
        self.checker.on_commit(node.index, block, certificate, self.step, self.now / 1000, honest_clock_ms)
        for tx in block.txs:
            node.executed.add(tx.id)
            if tx.id in self.submitted:  # anything else is the checker's "not-submitted"
                self.committed_at.setdefault(tx.id, self.now)

    # -- workload -------------------------------------------------------------

    def _schedule_workload(self, workload_end_ms: int) -> None:
        interval_ms = 1000 / self.scenario.workload.rate
        count = int(self.scenario.workload.rate * self.scenario.workload.duration_s)
        for number in range(count):
            at = int(number * interval_ms + self.rng.random() * interval_ms)
            if at < workload_end_ms:
                self._schedule(at, "submit", number)

    def _make_tx(self, number: int) -> Transaction:
        unsigned = UnsignedTransaction("sim.noop", CHAIN_ID, self.client.public_key, number, {"n": number})
        signature = self.client.sign(SignatureDomain.TRANSACTION, CHAIN_ID, codec.encode(unsigned))
        return Transaction(unsigned.type, CHAIN_ID, unsigned.sender, number, unsigned.body, signature)

    def _submit(self, number: int) -> None:
        tx = self._make_tx(number)
        self.txs[tx.id] = tx
        self.submitted[tx.id] = self.now
        self.checker.submitted.add(tx.id)
        self._client_send(tx)

    def _client_send(self, tx: Transaction) -> None:
        for node in self.nodes:
            if self.rng.random() >= self.network.drop:
                delay = self.rng.randint(*self.network.latency_ms)
                self._schedule(self.now + delay, "deliver", (CLIENT, node.index, tx.id, tx.nonce))

    def _resend(self) -> None:
        for tx_id, submitted_at in self.submitted.items():
            if tx_id not in self.committed_at and self.now - submitted_at >= CLIENT_RESEND_MS:
                self._client_send(self.txs[tx_id])
        self._schedule(self.now + CLIENT_RESEND_MS, "resend", None)

    # -- faults ---------------------------------------------------------------

    def _apply_fault(self, fault: Fault) -> None:
        self._trace.update(b"f%d|" % self.now + fault.kind.value.encode())
        self.fault_log.append({"at_s": fault.at_s, "kind": fault.kind.value, **fault_details(fault)})
        node = self.nodes[fault.node] if fault.node is not None else None
        copies = [copy for copy in (node, node.twin) if copy is not None] if node is not None else []
        if fault.kind is FaultKind.CRASH:
            for copy in copies:
                copy.replica, copy.tick_at, copy.paused, copy.held = None, None, False, []
        elif fault.kind is FaultKind.PAUSE:
            for copy in copies:
                copy.paused = copy.replica is not None
        elif fault.kind is FaultKind.RESUME:
            for copy in copies:
                self._resume(copy)
        elif fault.kind is FaultKind.RESTART:
            for copy in copies:
                if copy.replica is None:
                    self._start_replica(copy)
        elif fault.kind is FaultKind.PARTITION:
            self.network.partition(fault.groups, fault.one_way)
        elif fault.kind is FaultKind.HEAL:
            self.network.heal()
        elif fault.kind is FaultKind.DROP and fault.probability is not None:
            self.network.drop = fault.probability
        elif fault.kind is FaultKind.DELAY and fault.latency_ms is not None:
            self.network.latency_ms = fault.latency_ms
        elif fault.kind is FaultKind.CLOCK_SKEW and fault.skew_ms is not None:
            for copy in copies:
                copy.skew_ms = fault.skew_ms
        elif fault.kind is FaultKind.BYZANTINE and node is not None and fault.behaviour is Behaviour.TWINS:
            self._twin(node)
        elif fault.kind is FaultKind.BYZANTINE and node is not None and fault.behaviour is not None:
            node.byzantine = ByzantineBehaviour(fault.behaviour, node.index, node.signer, CHAIN_ID, self.rng)

    def _resume(self, node: SimNode) -> None:
        if not node.paused:
            return
        node.paused, held = False, node.held
        node.held, node.tick_at = [], None  # the tick it slept through was skipped: schedule afresh
        for source, data in held:
            if node.replica is not None:
                self._deliver(node, source, data)
        self._schedule_tick(node)

    def _twin(self, node: SimNode) -> None:
        """Split ``node`` into two copies with its key, the second starting from what
        the node persisted, as if restarted on a second machine."""
        if node.twin is not None:
            return
        first, second = twin_sides(node.index, len(self.nodes))
        node.byzantine = ByzantineBehaviour(Behaviour.TWINS, node.index, node.signer, CHAIN_ID, self.rng, first)
        twin = SimNode(
            node.index, node.signer, records=dict(node.records), chain=list(node.chain), skew_ms=node.skew_ms
        )
        twin.byzantine = ByzantineBehaviour(Behaviour.TWINS, node.index, node.signer, CHAIN_ID, self.rng, second)
        node.twin = twin
        if node.replica is not None:
            self._start_replica(twin)

    # -- observation ----------------------------------------------------------

    def _rejected(self) -> dict[str, int]:
        """Messages the honest replicas running at the end refused, by reason."""
        total: Counter[str] = Counter()
        for node in self._honest_live():
            assert node.replica is not None
            total.update(node.replica.rejected)
        return dict(sorted(total.items()))

    def _honest_live(self) -> list[SimNode]:
        return [node for node in self.nodes if node.byzantine is None and node.replica is not None and not node.paused]

    def _all_committed(self) -> bool:
        return all(len(node.executed) >= len(self.submitted) for node in self._honest_live()) and all(
            tx_id in node.executed for node in self._honest_live() for tx_id in self.submitted
        )

    def _sample(self) -> None:
        if self.progress is not None:
            self.progress(min(1.0, self.now / self._end_ms))
        for node in self.nodes:
            replica = node.replica
            self.timeline.append(
                {
                    "t_s": self.now / 1000,
                    "node": node.index,
                    "height": len(node.chain),
                    "view": replica.view if replica else None,
                    "up": replica is not None,
                }
            )
        self._schedule(self.now + SAMPLE_INTERVAL_MS, "sample", None)

    def _per_second(self) -> list[dict[str, Any]]:
        """Committed transactions and their submit-to-commit latency, per simulated second."""
        buckets: dict[int, list[int]] = {}
        for tx_id, committed_ms in self.committed_at.items():
            buckets.setdefault(committed_ms // 1000, []).append(committed_ms - self.submitted[tx_id])
        series = []
        for second in range(self.now // 1000 + 1):
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

    def _result(self, wall_s: float, calm_ms: int) -> SimulationResult:
        faulty = {
            node.index for node in self.nodes if node.byzantine is not None or node.replica is None or node.paused
        }
        expected = len(faulty) <= self.validators.f and self.network.groups is None and self.network.drop < 1
        missing = {
            node.index: sum(1 for tx_id in self.submitted if tx_id not in node.executed) for node in self._honest_live()
        }
        stuck = {index: count for index, count in missing.items() if count}
        liveness_ok = not stuck if expected else None
        latencies = sorted(
            self.committed_at[tx_id] - at for tx_id, at in self.submitted.items() if tx_id in self.committed_at
        )
        report = {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "nodes": len(self.nodes),
            "f": self.validators.f,
            "quorum": self.validators.quorum,
            "planted_bug": None
            if self.quorum_override is None
            else f"quorum of {self.quorum_override} votes (planted)",
            "faults": self.fault_log,
            "submitted_txs": len(self.submitted),
            "committed_txs": len(self.committed_at),
            "safety": {"ok": self.checker.ok, "violations": [vars(v) for v in self.checker.violations]},
            "liveness": {
                "ok": liveness_ok,
                "expected": expected,
                "bound_s": self.scenario.liveness_bound_s,
                "faulty_at_end": sorted(faulty),
                "uncommitted_by_node": stuck,
                "detail": _liveness_detail(expected, stuck, self.nodes, faulty, self.validators.f),
            },
            "view_changes": max((node.replica.view for node in self._honest_live() if node.replica), default=0),
            "rejected": self._rejected(),
            "latency_ms": percentiles(latencies),
            "heights": {str(node.index): len(node.chain) for node in self.nodes},
            "simulated_s": self.now / 1000,
            "wall_s": round(wall_s, 3),
            "speedup": round(self.now / 1000 / wall_s, 1) if wall_s > 0 else None,
            "events": self.step,
            "trace_sha256": self._trace.hexdigest(),
            "series": self._per_second(),
            "timeline": self.timeline,
        }
        return SimulationResult(report)


def fault_details(fault: Fault) -> dict[str, Any]:
    details: dict[str, Any] = {}
    for name in ("node", "behaviour", "probability", "latency_ms", "skew_ms"):
        value = getattr(fault, name)
        if value is not None:
            details[name] = value if not hasattr(value, "value") else value.value
    if fault.groups:
        details["groups"] = [list(group) for group in fault.groups]
    if fault.one_way:
        details["one_way"] = True
    return details


def _liveness_detail(expected: bool, stuck: dict[int, int], nodes: list[SimNode], faulty: set[int], f: int) -> str:
    if not expected:
        return f"not expected: {len(faulty)} faulty replica(s) at the end (f = {f}) or the network is still split"
    if not stuck:
        return "every submitted transaction committed on every live honest replica"
    parts = []
    for index, count in stuck.items():
        replica = nodes[index].replica
        state = f"view {replica.view} {replica.view_phase.value}" if replica else "down"
        parts.append(f"node {index}: {count} uncommitted, height {len(nodes[index].chain)}, {state}")
    return "; ".join(parts)
