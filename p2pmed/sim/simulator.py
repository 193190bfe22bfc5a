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

Epochs. Each node executes the blocks it commits with the real ledger rules
(``p2pmed.sim.chain``), so validator set changes are ``validator.change`` votes
ordered by consensus and decided by ``membership``. The host follows the chain as
``NodeCore`` does: when a change passes it ends the replica's epoch
(``Replica.end_epoch``); after the epoch's last block it starts the next epoch's
replica over an emptied consensus log, with the transactions waiting in its
mempool, or none if the node left the set. Replicas name peers by their index in
the epoch's set; the host maps them to nodes by key, and drops consensus
messages from nodes outside its set. A node outside the set (a site not yet
voted in, or one voted out) follows the chain as an observer does: every
``SYNC_INTERVAL_MS`` it asks a validator of its set in turn for the blocks after
its head and takes each one a quorum of its epoch's set certified
(``light_client.check_next``), until a block makes it a validator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, assert_never

from p2pmed import codec
from p2pmed.consensus.actions import Action, Broadcast, CommitBlock, Persist, Send, ServeBlocks
from p2pmed.consensus.certificates import InvalidMessage, Validators
from p2pmed.consensus.foreign_fetches import ForeignFetches
from p2pmed.consensus.light_client import check_next, validators_at
from p2pmed.consensus.messages import Blocks, CommitCertificate, FetchBlocks, Message, decode_message
from p2pmed.consensus.replica import Replica, ReplicaConfig
from p2pmed.crypto import SignatureDomain
from p2pmed.ledger.block import Block
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.tx import Transaction, UnsignedTransaction
from p2pmed.sim.byzantine import ByzantineBehaviour, twin_sides
from p2pmed.sim.chain import NodeChain, SimSites
from p2pmed.sim.checkers import EpochSets, SafetyChecker
from p2pmed.sim.fastsig import FastSigner, FastVerifier
from p2pmed.sim.network import SimNetwork
from p2pmed.sim.planted import planted_quorum
from p2pmed.sim.scenario import Behaviour, Change, Fault, FaultKind, Scenario
from p2pmed.stats import percentiles

__all__ = ["SimulationResult", "fault_details", "run_simulation"]

CHAIN_ID = "p2pmed-sim"
CLIENT = -1
CLIENT_RESEND_MS = 3_000
SAMPLE_INTERVAL_MS = 1_000
DONE_CHECK_INTERVAL_MS = 500
SYNC_INTERVAL_MS = 200
"""How often a node outside the set asks for blocks (``p2pmed.node.follower.POLL_INTERVAL_S``)."""
EVENTS_MAX = 20_000_000


@dataclass(frozen=True)
class SyncAsk:
    """A node outside the set asks a validator's store for the blocks from ``from_height``."""

    from_height: int


@dataclass(frozen=True)
class SyncAnswer:
    """The answer: blocks with their certificates (raw bytes from a Byzantine node)."""

    blocks: Blocks | bytes


@dataclass
class SimNode:
    index: int
    signer: FastSigner
    chain: NodeChain
    validators: Validators
    """The set of the epoch that orders this node's next block, from its own chain."""
    peers: tuple[int, ...] = ()
    """The nodes of ``validators``, in replica index order."""
    index_of: dict[bytes, int] = field(default_factory=dict)
    up: bool = True
    replica: Replica | None = None
    records: dict[str, bytes] = field(default_factory=dict)
    mempool: dict[bytes, Transaction] = field(default_factory=dict)
    """Transactions received and not yet committed here (lost in a crash, as ``NodeCore``'s)."""
    executed: set[bytes] = field(default_factory=set)
    skew_ms: int = 0
    byzantine: ByzantineBehaviour | None = None
    tick_at: int | None = None
    sync_at: int | None = None
    sync_turn: int = 0
    twin: SimNode | None = None
    paused: bool = False
    held: list[tuple[int, Any]] = field(default_factory=list)
    foreign: ForeignFetches = field(default_factory=lambda: ForeignFetches(0))
    """Block fetches it answered for nodes of other epochs (set up with the replicas' interval)."""


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
        quorum_override = planted_quorum(scenario.network.genesis_validators)
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
        network = scenario.network
        self.sites = SimSites.build(CHAIN_ID, seed, network.nodes, network.genesis_validators)
        self.client = FastSigner(hashlib.sha256(f"sim-client-{seed}".encode()).digest())
        self.verifier = FastVerifier([*self.sites.signers, self.client])
        self.ledger = self.sites.ledger()
        self.keys = [signer.public_key for signer in self.sites.signers]
        self.node_of = {key: index for index, key in enumerate(self.keys)}
        self.network = SimNetwork.from_spec(network, self.rng)
        self.nodes = [self._new_node(index, NodeChain.genesis(self.ledger)) for index in range(network.nodes)]
        # The checker counts votes with its own quorum, never a planted one, and learns
        # each epoch's set from the chain.
        self.checker = SafetyChecker(EpochSets(self.ledger, self.verifier), config.block_time_skew_max_ms)
        self.now = 0
        self.step = 0
        self._queue: list[tuple[int, int, str, Any]] = []
        self._counter = 0
        self._serial = 0
        self._trace = hashlib.sha256()
        self.submitted: dict[bytes, int] = {}
        self.txs: dict[bytes, Transaction] = {}
        self.committed_at: dict[bytes, int] = {}
        self.votes: dict[bytes, int] = {}
        """Validator set votes sent, with when; they commit like any transaction but are not the workload."""
        self.votes_committed: set[bytes] = set()
        self.change_log: list[dict[str, Any]] = []
        self._joiners = list(range(network.genesis_validators, network.nodes))
        self.timeline: list[dict[str, Any]] = []
        self.fault_log: list[dict[str, Any]] = []
        self.progress: Callable[[float], None] | None = None
        self._end_ms = 1

    def _new_node(self, index: int, chain: NodeChain) -> SimNode:
        node = SimNode(index, self.sites.signers[index], chain, self._validators_at(chain))
        node.foreign = ForeignFetches(self.config.fetch_serve_interval_ms)
        return node

    def _validators_at(self, chain: NodeChain) -> Validators:
        """The set that orders ``chain``'s next block (with the planted quorum, if any)."""
        validators = validators_at(chain, chain.height + 1, CHAIN_ID, self.verifier)
        if self.quorum_override is None:
            return validators
        return dataclasses.replace(validators, quorum_override=self.quorum_override)

    # -- event queue ----------------------------------------------------------

    def _schedule(self, at_ms: int, kind: str, payload: Any) -> None:
        self._counter += 1
        heapq.heappush(self._queue, (at_ms, self._counter, kind, payload))

    def run(self) -> SimulationResult:
        started = time.perf_counter()
        for node in self.nodes:
            self._start_node(node)
        workload_end_ms = int(self.scenario.workload.duration_s * 1000)
        self._schedule_workload(workload_end_ms)
        for fault in self.scenario.faults:
            self._schedule(int(fault.at_s * 1000), "fault", fault)
        for number, change in enumerate(self.scenario.changes):
            self._schedule(int(change.at_s * 1000), "change", number)
        times_s = [fault.at_s for fault in self.scenario.faults] + [change.at_s for change in self.scenario.changes]
        calm_ms = max([workload_end_ms, *(int(at_s * 1000) for at_s in times_s)])
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
            node = self.nodes[destination]
            if node.twin is not None:
                node = self._reached(source, node)
            if node.paused:
                node.held.append((source, data))
            elif node.up:
                self._deliver(node, source, data)
        elif kind == "tick":
            node = payload
            if node.replica is not None and node.tick_at == self.now and not node.paused:
                node.tick_at = None
                self._trace.update(b"t%d|%d" % (self.now, node.index))
                self._carry_out(node, node.replica.tick(self._local(node)))
        elif kind == "sync":
            node = payload
            if node.sync_at == self.now:
                node.sync_at = None
                self._ask_for_blocks(node)
        elif kind == "submit":
            self._submit(payload)
        elif kind == "resend":
            self._resend()
        elif kind == "sample":
            self._sample()
        elif kind == "fault":
            self._apply_fault(payload)
        elif kind == "change":
            self._vote(payload)

    # -- nodes ------------------------------------------------------------------

    def _deliver(self, node: SimNode, source: int, data: Any) -> None:
        """``data``: a tx id from the client, a block fetch or its answer between a node
        outside the set and a store, raw bytes from a Byzantine node, else a message."""
        if source == CLIENT:
            self._receive_tx(node, self.txs[data])
        elif isinstance(data, SyncAsk):
            self._send(node, [(source, node.chain.answer(data.from_height))], SyncAnswer)
        elif isinstance(data, SyncAnswer):
            self._take_synced(node, source, data.blocks)
        else:
            self._receive_message(node, source, data)

    def _receive_message(self, node: SimNode, source: int, data: Message | bytes) -> None:
        """A consensus message, as ``NodeCore.receive_many`` takes it: a block fetch its replica
        cannot answer (``foreign_fetches``) is answered from the chain, one from outside the
        set is refused, the rest go to the replica."""
        sender = node.index_of.get(self.keys[source])
        message: Message | None
        try:
            message = decode_message(data) if isinstance(data, bytes) else data
        except codec.CodecError:
            message = None
        if message is not None and node.foreign.is_foreign(message, sender, node.replica is not None):
            assert isinstance(message, FetchBlocks)
            if node.foreign.admit(self.keys[source], self._local(node)):
                self._send(node, [(source, node.chain.answer(message.from_height))])
            return
        if node.replica is None or sender is None:
            return  # not a validator of this node's epoch, or this node is in no set: refused
        local = self._local(node)
        if message is None:
            self._carry_out(node, node.replica.receive(sender, data, local))  # type: ignore[arg-type]
        else:
            self._carry_out(node, node.replica.deliver(sender, message, local))

    def _receive_tx(self, node: SimNode, tx: Transaction) -> None:
        if tx.id not in node.executed:
            node.mempool[tx.id] = tx
        if node.replica is not None:
            self._carry_out(node, node.replica.submit(tx, self._local(node)))

    def _reached(self, source: int, node: SimNode) -> SimNode:
        """The copy of the twinned ``node`` that a message from ``source`` reaches; each
        client submission reaches one twin or the other, so the two propose different batches."""
        twin = node.twin
        assert twin is not None and twin.byzantine is not None
        if source == CLIENT:
            return twin if self.rng.random() < 0.5 else node
        return twin if source in twin.byzantine.reach else node

    def _local(self, node: SimNode) -> int:
        return max(0, self.now + node.skew_ms)

    def _start_node(self, node: SimNode) -> None:
        """Start (or restart from what it stored) ``node``: a replica if its chain says it is
        in the set of the epoch it has reached, else it follows the chain as an outsider."""
        node.up, node.tick_at, node.sync_at = True, None, None
        node.validators = self._validators_at(node.chain)
        self._carry_out(node, self._begin_epoch(node))

    def _begin_epoch(self, node: SimNode) -> list[Action]:
        """This node's replica for its current epoch, if it is in the set; its first actions."""
        validators = node.validators
        node.peers = tuple(self.node_of[key] for key in validators.keys)
        node.index_of = {key: index for index, key in enumerate(validators.keys)}
        if node.signer.public_key not in node.index_of:
            node.replica = None
            self._schedule_sync(node, self.now)
            return []
        replica = node.replica = self.replica_class(
            validators,
            node.signer,
            self.config,
            self._tx_check,
            now_ms=self._local(node),
            last_executed=node.chain.height,
            last_block_hash=node.chain.head_hash,
            last_block_time_ms=node.chain.head_time_ms,
            records=dict(node.records),
            committed_tx_ids=[tx.id for block, _ in node.chain.blocks for tx in block.txs],
            epoch_last=self._epoch_last(node),
        )
        if node.byzantine is not None:
            node.byzantine.index, node.byzantine.signing_context = replica.index, validators.signing_context
        actions = replica.start(self._local(node))
        for tx in list(node.mempool.values()):
            actions.extend(replica.submit(tx, self._local(node)))
        return actions

    def _epoch_last(self, node: SimNode) -> int | None:
        """Where the node's current epoch ends, once a change has passed (``NodeCore._epoch_last``)."""
        latest = membership.latest_epoch(node.chain)
        assert latest is not None
        return latest.first_height - 1 if latest.number > node.validators.epoch else None

    def _tx_check(self, tx: Transaction) -> bool:
        return self.verifier.verify(
            tx.sender, tx.signature, SignatureDomain.TRANSACTION, tx.chain_id, tx.signing_payload()
        )

    def _carry_out(self, node: SimNode, actions: list[Action]) -> None:
        """Carry out a replica's actions in order; after the last block of an epoch the
        old replica's remaining actions are void and the new one's follow (as in ``NodeCore``)."""
        outgoing: list[tuple[int, Message]] = []
        work = deque(actions)
        while work:
            action = work.popleft()
            match action:
                case Broadcast():
                    outgoing.extend((peer, action.message) for peer in node.peers if peer != node.index)
                case Persist():
                    records = node.records
                    for key, value in action.records.items():
                        if value is None:
                            records.pop(key, None)
                        else:
                            records[key] = value
                case Send():
                    outgoing.append((node.peers[action.to], action.message))
                case CommitBlock():
                    epoch = node.validators.epoch
                    self._commit(node, action.block, action.certificate)
                    if node.validators.epoch != epoch:
                        work = deque(self._begin_epoch(node))
                case ServeBlocks():
                    outgoing.append((node.peers[action.to], node.chain.answer(action.from_height)))
                case _:
                    assert_never(action)
        if outgoing:
            self._send(node, outgoing)
        self._schedule_tick(node)

    def _send(
        self, node: SimNode, outgoing: list[tuple[int, Message]], wrap: Callable[[Any], Any] | None = None
    ) -> None:
        """Honest nodes hand over message objects (frozen, shared by all receivers, which
        still verify every signature); a Byzantine node's output goes as raw bytes.
        ``wrap`` marks what is not consensus (``SyncAnswer``)."""
        wire: list[tuple[int, Message | bytes]] = list(outgoing)
        if node.byzantine is not None:
            wire = list(node.byzantine.outgoing(outgoing))
        for destination, data in wire:
            self._transmit(node.index, destination, data if wrap is None else wrap(data))

    def _transmit(self, source: int, destination: int, payload: Any) -> None:
        self._serial += 1
        for delay in self.network.delivery_delays_ms(source, destination):
            self._schedule(self.now + delay, "deliver", (source, destination, payload, self._serial))

    def _schedule_tick(self, node: SimNode) -> None:
        if node.replica is None:
            return
        at = max(self.now, node.replica.next_deadline_ms() - node.skew_ms)
        if node.tick_at is None or at < node.tick_at:
            node.tick_at = at
            self._schedule(at, "tick", node)

    def _commit(self, node: SimNode, block: Block, certificate: CommitCertificate) -> None:
        node.chain.append(self.ledger, block, certificate)
        self._trace.update(b"c%d|%d|" % (self.now, node.index) + block.hash)
        for tx in block.txs:
            node.mempool.pop(tx.id, None)
            node.executed.add(tx.id)
        if node.byzantine is None:
            honest_clock_ms = max(self._local(other) for other in self.nodes if other.byzantine is None)
            self.checker.on_commit(node.index, block, certificate, self.step, self.now / 1000, honest_clock_ms)
            for tx in block.txs:
                if tx.id in self.submitted:  # anything else is the checker's "not-submitted"
                    self.committed_at.setdefault(tx.id, self.now)
                elif tx.id in self.votes:
                    self.votes_committed.add(tx.id)
        self._follow_epoch(node)

    def _follow_epoch(self, node: SimNode) -> None:
        """After a block: a change that passed ends the replica's epoch; past the epoch's last
        block the node takes the next set (``_carry_out`` then starts its replica)."""
        epoch = membership.epoch_at(node.chain, node.chain.height + 1)
        assert epoch is not None
        if epoch.number != node.validators.epoch:
            node.validators, node.records = self._validators_at(node.chain), {}
            if node.replica is not None:
                node.replica, node.tick_at = None, None
            return
        epoch_last = self._epoch_last(node)
        if node.replica is not None and epoch_last is not None and node.replica.epoch_last is None:
            node.replica.end_epoch(epoch_last)

    # -- nodes outside the set ---------------------------------------------------

    def _schedule_sync(self, node: SimNode, at_ms: int) -> None:
        if node.sync_at is None or at_ms < node.sync_at:
            node.sync_at = at_ms
            self._schedule(at_ms, "sync", node)

    def _ask_for_blocks(self, node: SimNode) -> None:
        """Ask the next validator of this node's set for the blocks after its head."""
        if node.replica is not None or not node.up or node.paused:
            return  # a validator again, or down: its restart or resumption asks anew
        peers = [peer for peer in node.peers if peer != node.index]
        if peers:
            node.sync_turn += 1
            self._transmit(node.index, peers[node.sync_turn % len(peers)], SyncAsk(node.chain.height + 1))
        self._schedule_sync(node, self.now + SYNC_INTERVAL_MS)

    def _take_synced(self, node: SimNode, source: int, data: Blocks | bytes) -> None:
        """Take the blocks of an answer one by one while each is the next, certified by a
        quorum of its epoch's set as this node's chain knows it (``NodeCore.apply_synced``)."""
        if node.replica is not None:
            return
        try:
            answer = decode_message(data) if isinstance(data, bytes) else data
        except codec.CodecError:
            return
        if not isinstance(answer, Blocks):
            return
        taken = 0
        for item in answer.blocks:
            if node.replica is not None:
                break
            try:
                check_next(node.validators, node.chain.height, node.chain.head_hash, item)
            except InvalidMessage:
                return
            self._carry_out(node, [CommitBlock(item.block, item.certificate)])
            taken += 1
        if taken and answer.more and node.replica is None:
            self._transmit(node.index, source, SyncAsk(node.chain.height + 1))

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
        for tx_id, voted_at in self.votes.items():
            if tx_id not in self.votes_committed and self.now - voted_at >= CLIENT_RESEND_MS:
                self._client_send(self.txs[tx_id])
        self._schedule(self.now + CLIENT_RESEND_MS, "resend", None)

    # -- validator set changes -------------------------------------------------

    def _reference(self) -> SimNode | None:
        """The honest validator furthest ahead: where the operators read the set in force."""
        validators = [node for node in self._honest_live() if node.replica is not None]
        return max(validators, key=lambda node: node.chain.height, default=None)

    def _vote(self, number: int) -> None:
        """Change ``number``: once the change before it is in force, every honest validator's
        operator sends its vote, as a client sends a transaction (and again until it commits)."""
        reference = self._reference()
        latest = membership.latest_epoch(reference.chain) if reference is not None else None
        if reference is None or latest is None or latest.number != number or reference.validators.epoch != number:
            self._schedule(self.now + DONE_CHECK_INTERVAL_MS, "change", number)
            return
        change = self.scenario.changes[number]
        removed = self._removed(change, reference)
        joining, self._joiners = self._joiners[: change.add], self._joiners[change.add :]
        body = self.sites.change(removed, joining)
        voters = [peer for peer in reference.peers if self.nodes[peer].byzantine is None]
        self._trace.update(b"v%d|%d" % (self.now, number))
        self.change_log.append(
            {"at_s": change.at_s, "voted_at_s": self.now / 1000, "remove": removed, "add": joining, "voters": voters}
        )
        for voter in voters:
            tx = self.sites.vote(voter, body)
            self.txs[tx.id] = tx
            self.votes[tx.id] = self.now
            self.checker.submitted.add(tx.id)
            self._client_send(tx)

    def _removed(self, change: Change, reference: SimNode) -> list[int]:
        removed = list(change.remove)
        if change.remove_primary:
            assert reference.replica is not None
            removed.append(reference.peers[reference.replica.primary])
        return removed

    # -- faults ---------------------------------------------------------------

    def _apply_fault(self, fault: Fault) -> None:
        self._trace.update(b"f%d|" % self.now + fault.kind.value.encode())
        self.fault_log.append({"at_s": fault.at_s, "kind": fault.kind.value, **fault_details(fault)})
        node = self.nodes[fault.node] if fault.node is not None else None
        copies = [copy for copy in (node, node.twin) if copy is not None] if node is not None else []
        if fault.kind is FaultKind.CRASH:
            for copy in copies:
                copy.up, copy.replica, copy.tick_at, copy.sync_at, copy.paused = False, None, None, None, False
                copy.held, copy.mempool = [], {}
                copy.foreign = ForeignFetches(self.config.fetch_serve_interval_ms)
        elif fault.kind is FaultKind.PAUSE:
            for copy in copies:
                copy.paused = copy.up
        elif fault.kind is FaultKind.RESUME:
            for copy in copies:
                self._resume(copy)
        elif fault.kind is FaultKind.RESTART:
            for copy in copies:
                if not copy.up:
                    self._start_node(copy)
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
            node.byzantine = ByzantineBehaviour(
                fault.behaviour, self._replica_index(node), node.signer, node.validators.signing_context, self.rng
            )

    @staticmethod
    def _replica_index(node: SimNode) -> int:
        """The node's index in its epoch's set (0 outside it: it signs nothing then)."""
        return node.replica.index if node.replica is not None else 0

    def _resume(self, node: SimNode) -> None:
        if not node.paused:
            return
        node.paused, held = False, node.held
        node.held, node.tick_at = [], None  # the tick it slept through was skipped: schedule afresh
        for source, data in held:
            if node.up:
                self._deliver(node, source, data)
        self._schedule_tick(node)
        if node.replica is None:
            self._schedule_sync(node, self.now)

    def _twin(self, node: SimNode) -> None:
        """Split ``node`` into two copies with its key, the second starting from what
        the node persisted, as if restarted on a second machine."""
        if node.twin is not None:
            return
        first, second = twin_sides(node.index, len(self.nodes))
        context = node.validators.signing_context
        index = self._replica_index(node)
        node.byzantine = ByzantineBehaviour(Behaviour.TWINS, index, node.signer, context, self.rng, first)
        twin = self._new_node(node.index, node.chain.copy())
        twin.records, twin.skew_ms = dict(node.records), node.skew_ms
        twin.byzantine = ByzantineBehaviour(Behaviour.TWINS, index, node.signer, context, self.rng, second)
        node.twin = twin
        if node.up:
            self._start_node(twin)
        else:
            twin.up = False

    # -- observation ----------------------------------------------------------

    def _rejected(self) -> dict[str, int]:
        """Messages the honest replicas running at the end refused, by reason."""
        total: Counter[str] = Counter()
        for node in self._honest_live():
            if node.replica is not None:
                total.update(node.replica.rejected)
        return dict(sorted(total.items()))

    def _honest_live(self) -> list[SimNode]:
        """Honest nodes up and not paused, in the set or outside it (where they sync)."""
        return [node for node in self.nodes if node.byzantine is None and node.up and not node.paused]

    def _all_committed(self) -> bool:
        """Every submitted transaction on every honest live node, and every change in force there."""
        changes = len(self.scenario.changes)
        live = self._honest_live()
        if not all(node.validators.epoch == changes and len(node.executed) >= len(self.submitted) for node in live):
            return False
        return all(tx_id in node.executed for node in live for tx_id in self.submitted)

    def _sample(self) -> None:
        if self.progress is not None:
            self.progress(min(1.0, self.now / self._end_ms))
        for node in self.nodes:
            replica = node.replica
            self.timeline.append(
                {
                    "t_s": self.now / 1000,
                    "node": node.index,
                    "height": node.chain.height,
                    "view": replica.view if replica else None,
                    "up": node.up,
                    "validator": replica is not None,
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
        final = self.checker.sets.epochs[-1]  # the set in force at the end, as the chain says
        members = {self.node_of[key] for key in final.keys}
        faulty = {
            node.index
            for node in self.nodes
            if node.index in members and (node.byzantine is not None or not node.up or node.paused)
        }
        expected = len(faulty) <= final.f and self.network.groups is None and self.network.drop < 1
        missing = {
            node.index: sum(1 for tx_id in self.submitted if tx_id not in node.executed) for node in self._honest_live()
        }
        changes = len(self.scenario.changes)
        stuck = {
            index: count for index, count in missing.items() if count or self.nodes[index].validators.epoch != changes
        }
        liveness_ok = not stuck if expected else None
        latencies = sorted(
            self.committed_at[tx_id] - at for tx_id, at in self.submitted.items() if tx_id in self.committed_at
        )
        report = {
            "scenario": self.scenario.name,
            "seed": self.seed,
            "nodes": len(self.nodes),
            "f": final.f,
            "quorum": final.quorum,
            "planted_bug": None
            if self.quorum_override is None
            else f"quorum of {self.quorum_override} votes (planted)",
            "faults": self.fault_log,
            "changes": self.change_log,
            "epochs": [
                {
                    "number": validators.epoch,
                    "first_height": validators.first_height,
                    "validators": [self.node_of[key] for key in validators.keys],
                }
                for validators in self.checker.sets.epochs
            ],
            "submitted_txs": len(self.submitted),
            "committed_txs": len(self.committed_at),
            "safety": {"ok": self.checker.ok, "violations": [vars(v) for v in self.checker.violations]},
            "liveness": {
                "ok": liveness_ok,
                "expected": expected,
                "bound_s": self.scenario.liveness_bound_s,
                "faulty_at_end": sorted(faulty),
                "uncommitted_by_node": stuck,
                "detail": _liveness_detail(expected, stuck, self.nodes, faulty, final.f, changes),
            },
            "view_changes": max((node.replica.view for node in self._honest_live() if node.replica), default=0),
            "rejected": self._rejected(),
            "latency_ms": percentiles(latencies),
            "heights": {str(node.index): node.chain.height for node in self.nodes},
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


def _liveness_detail(
    expected: bool, stuck: dict[int, int], nodes: list[SimNode], faulty: set[int], f: int, changes: int
) -> str:
    if not expected:
        return f"not expected: {len(faulty)} faulty validator(s) at the end (f = {f}) or the network is still split"
    if not stuck:
        return "every submitted transaction committed on every live honest node, every change in force there"
    parts = []
    for index, count in stuck.items():
        node = nodes[index]
        replica = node.replica
        state = f"view {replica.view} {replica.view_phase.value}" if replica else "outside the set"
        epoch = f"epoch {node.validators.epoch} of {changes}"
        parts.append(f"node {index}: {count} uncommitted, height {node.chain.height}, {epoch}, {state}")
    return "; ".join(parts)
