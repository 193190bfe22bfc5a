"""A PBFT replica with no I/O: messages, transactions and time go in, actions come out.

Theory of operation (Castro & Liskov, OSDI '99 §4, with signed messages):

Normal case (§4.2). The primary of view v, replica ``v mod n``, batches pending
transactions into a proposal and sends PRE-PREPARE(v, s, d). A backup accepts it
when it is in view v, s lies within the watermarks (h, h + L], it has not
accepted another digest for (v, s), and the transactions check out; it then
persists and broadcasts PREPARE(v, s, d). A slot is *prepared* with the
pre-prepare and q - 1 matching prepares from other replicas (q = 2f+1 for
n = 3f+1); the replica then persists and broadcasts COMMIT(v, s, d). It is
*committed* with q matching commits, and blocks execute in sequence order. Each
executed block yields a ``CommitBlock`` action carrying its commit certificate.

Checkpoints (§4.3). After executing a sequence number that is a multiple of K,
a replica broadcasts CHECKPOINT(s, block hash). q matching checkpoints make it
stable: the low watermark h moves to s and the log up to s is dropped.

Forwarding (§4.1: a backup relays a client's request to the primary). Transactions
reach the replicas by best-effort gossip, so a backup may hold one the primary never
received. Before it suspects the primary for its oldest pending transaction, a backup
sends the primary its oldest pending ones that no proposal carries (``Forward``, at most
``FORWARD_TXS_MAX``) along with its probe for missed blocks; the primary checks them and
proposes them before its own queue. An honest primary then orders them within the probe's
wait, and only one that leaves them out is replaced. A forward moves at most
``FORWARD_TXS_MAX`` transactions of a backup ahead per half request timeout (the rest are
refused as ``forward-too-often``), so a Byzantine backup cannot starve the others' queue,
and costs the primary as many signature checks.

View change (§4.4). A backup that waited ``request_timeout_ms`` for pending
transactions to commit (twice as long after each view change, until a block
commits a transaction within the configured timeout: a network slower than the
timeout gets a primary through and keeps it; see ``timers``), or
saw f+1 replicas move to higher views, moves to view v+1: it stops accepting
messages of view v and broadcasts VIEW-CHANGE with its stable checkpoint proof
and every prepared certificate above it. The new primary collects q view
changes and broadcasts NEW-VIEW, re-proposing for each
sequence above the highest stable checkpoint the proposal prepared in the
highest view, or an empty proposal where none prepared. Backups recompute that
choice from the view changes and reject a NEW-VIEW that does not match. If the
new view does not start in time, the replica moves on to v+2 with a doubled
timeout. The view is a number (``view``) and a phase (``view_phase``, ACTIVE or
CHANGING); the module ``view_phase`` tabulates the transitions between them.

Proposals travel by digest in a view change (as in the paper: certificates name
requests by digest). A prepared certificate carries the proposal's header (its
hash is the digest), a NEW-VIEW the pre-prepare votes and headers; so both are
bounded by the validator count and window alone (``sizes``), checked when the
replica is built. A backup prepares a re-proposal on its digest; the
transactions come from its own log (a slot keeps the proposals it saw, by
digest), from the new primary, which sends each one it holds as a PRE-PREPARE
frame, or from a peer asked with FETCH-PROPOSAL (the answer is authenticated by
its digest). A slot executes only once its transactions are here. Liveness: a
proposal prepared in view v was pre-prepared by q replicas, at least f+1 of them
honest, and each honest one keeps it (persisted) until its slot is stable, unless
``BODIES_PER_SLOT_MAX`` later proposals for the same sequence displaced it there.

Timers. PBFT needs time for liveness only. The request, view-change, retransmit,
head-probe and sync timers are one ``LivenessTimers`` object (module ``timers``),
which owns their deadlines and backoff: ``tick`` asks it what expired, the
handlers arm and stop its timers, and ``next_deadline_ms`` reads from it.

State transfer. A replica that sees f+1 replicas ahead of it asks one of them
for committed blocks (``FetchBlocks``); the host answers (``ServeBlocks``) from
its store, and the replica applies only blocks that chain onto its head and carry
a valid commit certificate. A replica that heard nothing for ``head_probe_idle_ms``
asks one peer (a different one each time) for blocks after its head: on a quiet
network that is the only way a node that missed blocks learns it is behind.

Crash recovery. Every vote, the view and the stable checkpoint are written with
a ``Persist`` action placed before the messages that depend on them, so a
restarted replica, rebuilt from those records and the host's last block, never
signs something that contradicts what it signed before.

State commitments. A proposal commits to the outcome of an earlier block; how the
primary chooses it and when a backup holds a pre-prepare until its host has executed
the block it names is the module ``state_commitments``.

Message handling is split into "a peer sent garbage" (``InvalidMessage``,
``CodecError``: dropped and counted in ``rejected``) and "we have a bug"
(``AssertionError``: raised).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar, assert_never

from p2pmed import codec
from p2pmed.consensus.actions import Action, Broadcast, CommitBlock, Persist, Send, ServeBlocks
from p2pmed.consensus.certificates import InvalidMessage, Validators, selected_proposals
from p2pmed.consensus.messages import (
    FETCH_BYTES_MAX,
    FORWARD_BYTES_MAX,
    FORWARD_TXS_MAX,
    PROPOSAL_BYTES_MAX,
    Blocks,
    Checkpoint,
    CommitCertificate,
    FetchBlocks,
    FetchProposal,
    Forward,
    Message,
    NewView,
    PreparedCertificate,
    PrePrepare,
    Proposal,
    ProposalHeader,
    ViewChange,
    Vote,
    VoteKind,
    decode_message,
    header_digest,
    message_kind,
    signing_payload,
    with_signature,
)
from p2pmed.consensus.sizes import new_view_fits
from p2pmed.consensus.state_commitments import STATELESS, StateCommitments, check_commitment
from p2pmed.consensus.timers import LivenessTimers
from p2pmed.consensus.view_phase import ViewPhase
from p2pmed.crypto import Signer
from p2pmed.ledger.block import GENESIS_PARENT_HASH, STATE_LAG_MAX, Block, StateCommitment
from p2pmed.ledger.tx import Transaction

__all__ = ["Replica", "ReplicaConfig"]

SignedT = TypeVar("SignedT", Vote, Checkpoint, ViewChange, NewView)

NOTES_MAX = 100
BODIES_PER_SLOT_MAX = 4
"""Proposals kept per sequence number besides the current and the prepared one: those this
replica pre-prepared in earlier views, one of which a later new-view may select again."""


@dataclass(frozen=True)
class ReplicaConfig:
    batch_size_max: int = 500
    block_bytes_max: int = 2 << 20
    """The most bytes of transactions this replica proposes in one block (at most the
    protocol's ``PROPOSAL_BYTES_MAX``; at least a transaction's ``TX_SIZE_MAX``)."""
    batch_delay_ms: int = 0
    pipeline_max: int = 1
    checkpoint_interval: int = 16
    watermark_window: int = 64
    request_timeout_ms: int = 2_000
    view_change_timeout_ms: int = 2_000
    retransmit_interval_ms: int = 300
    heartbeat_interval_ms: int = 60_000
    """An idle primary proposes an empty block this long after the last one (0: never), so
    that consents, grants and other expiries take effect on a network without traffic."""
    block_time_skew_max_ms: int = 10_000
    """A backup prepares a new proposal only if it is dated within this of its own clock
    (and after the proposals before it); a re-proposal or a NEW-VIEW's empty block only
    if it is dated no later than its clock plus this."""
    fetch_serve_interval_ms: int = 250
    """A peer's block fetch is answered at most once per this (less than the retransmit
    interval, at which an honest peer asks again)."""
    head_probe_idle_ms: int = 3_000
    """After hearing no consensus message for this long, ask one peer (in turn) for blocks
    after our head: on an idle network nothing else tells a node that missed blocks it is behind."""
    pending_max: int = 5_000
    committed_ids_max: int = 1_000_000

    def __post_init__(self) -> None:
        assert self.batch_size_max >= 1 and 1 <= self.pipeline_max <= STATE_LAG_MAX
        assert self.fetch_serve_interval_ms < self.retransmit_interval_ms, "honest re-asks must be served"
        assert codec.TX_SIZE_MAX <= self.block_bytes_max <= PROPOSAL_BYTES_MAX, "every transaction must fit a block"
        assert self.watermark_window >= 2 * self.checkpoint_interval, "L must cover two checkpoint intervals"
        assert self.watermark_window % self.checkpoint_interval == 0


@dataclass(frozen=True)
class ViewRecord:
    """The view and its phase, as persisted; ``active`` is whether the phase is ``ViewPhase.ACTIVE``."""

    view: int
    active: bool

    @classmethod
    def of(cls, view: int, phase: ViewPhase) -> ViewRecord:
        return cls(view, phase is ViewPhase.ACTIVE)

    @property
    def phase(self) -> ViewPhase:
        return ViewPhase.ACTIVE if self.active else ViewPhase.CHANGING


@dataclass(frozen=True)
class StableRecord:
    sequence: int
    proof: tuple[Checkpoint, ...]


@dataclass(frozen=True)
class SlotRecord:
    """What this replica signed for one sequence number, and what it saw prepare; the
    proposals themselves are records of their own (``_body_key``), written once each."""

    pre_prepare: Vote | None
    header: ProposalHeader | None
    my_prepare: Vote | None
    my_commit: Vote | None
    prepared_certificate: PreparedCertificate | None


@dataclass
class Slot:
    pre_prepare: Vote | None = None
    """The current view's pre-prepare vote; ``header`` is what it votes for."""
    header: ProposalHeader | None = None
    prepares: dict[int, Vote] = field(default_factory=dict)
    commits: dict[int, Vote] = field(default_factory=dict)
    my_prepare: Vote | None = None
    my_commit: Vote | None = None
    prepared_certificate: PreparedCertificate | None = None
    certificate: CommitCertificate | None = None
    bodies: dict[bytes, Proposal] = field(default_factory=dict)
    """Proposals seen for this sequence, by digest (a new-view names one by digest only)."""

    @property
    def proposal(self) -> Proposal | None:
        """The current pre-prepare's proposal, if its transactions are here."""
        return None if self.pre_prepare is None else self.bodies.get(self.pre_prepare.digest)

    def record(self) -> SlotRecord:
        return SlotRecord(self.pre_prepare, self.header, self.my_prepare, self.my_commit, self.prepared_certificate)

    def reset_view(self) -> None:
        self.pre_prepare, self.header, self.my_prepare, self.my_commit = None, None, None, None
        self.prepares, self.commits = {}, {}


def _slot_key(sequence: int) -> str:
    return f"slot/{sequence:020d}"


def _body_key(sequence: int, digest: bytes) -> str:
    return f"proposal/{sequence:020d}/{digest.hex()}"


class Replica:
    """One validator's PBFT state machine. Feed it with ``submit``, ``receive`` and ``tick``."""

    def __init__(
        self,
        validators: Validators,
        signer: Signer,
        config: ReplicaConfig,
        tx_check: Callable[[Transaction], bool],
        *,
        now_ms: int = 0,
        last_executed: int = 0,
        last_block_hash: bytes = GENESIS_PARENT_HASH,
        last_block_time_ms: int = 0,
        records: Mapping[str, bytes] | None = None,
        committed_tx_ids: Iterable[bytes] = (),
        epoch_last: int | None = None,
        commitments: StateCommitments = STATELESS,
    ) -> None:
        assert signer.public_key in validators.keys, "the signer must be a validator"
        assert last_executed >= validators.base, "an epoch starts from the blocks before it"
        assert new_view_fits(validators.quorum, config.watermark_window), (
            f"a new-view of {validators.n} validators over a window of {config.watermark_window} could exceed a frame"
        )
        self.validators = validators
        self.config = config
        self.index = validators.keys.index(signer.public_key)
        self._signer = signer
        self._tx_check = tx_check
        self._commitments = commitments
        self._awaiting_state: dict[int, PrePrepare] = {}
        """Pre-prepares held until the host executed the block their proposal commits to."""
        self._early: dict[int, PrePrepare] = {}
        """Pre-prepares of the next view that overtook its NEW-VIEW, by sequence: taken up
        when that view starts (a replica that cannot send could not fetch them later)."""
        self._now_ms = now_ms
        self.view = 0
        self.view_phase = ViewPhase.ACTIVE
        self.last_executed = last_executed
        self.last_block_hash = last_block_hash
        self.last_block_time_ms = last_block_time_ms
        self.stable_sequence = validators.base
        self.epoch_last = epoch_last
        """The last height this epoch orders, once a change of the validator set has passed
        (``end_epoch``); None while no change is due."""
        self._stable_proof: tuple[Checkpoint, ...] = ()
        self._log: dict[int, Slot] = {}
        self._executed_digests: dict[int, bytes] = {}
        self._my_checkpoints: dict[int, bytes] = {}
        self._checkpoint_votes: dict[int, dict[int, Checkpoint]] = {}
        self._pending: dict[bytes, tuple[Transaction, int]] = {}  # id -> (transaction, arrival_ms)
        self._forwarded: dict[bytes, None] = {}
        """Pending transactions backups forwarded, which this replica proposes first as primary."""
        self._forward_taken_at_ms: dict[int, int] = {}
        # Ids of recently committed transactions (the host passes those of its last
        # blocks after a restart), so a resubmitted one is never ordered again.
        self._committed_ids: dict[bytes, None] = dict.fromkeys(committed_tx_ids)
        self._view_changes: dict[int, ViewChange] = {}
        self._view_changes_checked: set[int] = set()
        """Replicas whose view change in ``_view_changes`` had its certificates checked."""
        self._fetch_served_at_ms: dict[int, int] = {}
        self._proposals_served: dict[int, tuple[int, int]] = {}
        """Per peer: when its current serving interval began, and the proposal bytes sent in it."""
        self._continue_from: int | None = None
        """The peer whose last answer was cut short (``Blocks.more``): asked again first."""
        self._new_view: NewView | None = None
        self._next_sequence = last_executed + 1
        self._timers = LivenessTimers(
            request_timeout_ms=config.request_timeout_ms,
            view_change_timeout_ms=config.view_change_timeout_ms,
            retransmit_interval_ms=config.retransmit_interval_ms,
            head_probe_idle_ms=config.head_probe_idle_ms,
            now_ms=now_ms,
        )
        self._ahead: dict[int, int] = {}
        self._later_views: dict[int, int] = {}
        self._probed_for: bytes | None = None
        """The pending transaction on whose behalf we last probed peers for blocks."""
        self._retransmit_height = -1
        self._my_latest_checkpoint: Checkpoint | None = None
        self._records: dict[str, bytes | None] = {}
        self._messages: list[Action] = []
        self._decided: list[Action] = []
        self.rejected: Counter[str] = Counter()
        self.received: Counter[str] = Counter()  # decoded messages by kind, valid or not
        self._notes: list[str] = []
        self.view_changes_started = 0
        if records:
            self._restore(records)

    # -- public surface -------------------------------------------------------

    @property
    def primary(self) -> int:
        return self.validators.primary(self.view)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.index

    @property
    def request_timeout_ms(self) -> int:
        """How long a pending transaction may wait now before the primary is suspected."""
        return self._timers.request_timeout_ms

    @property
    def catching_up_to(self) -> int | None:
        """While fetching blocks it missed: the highest sequence a peer has shown (a lower
        bound on the head it is catching up to); None when it is not fetching."""
        if not self._timers.syncing:
            return None
        return max(self._ahead.values(), default=self.last_executed)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def start(self, now_ms: int) -> list[Action]:
        """First call after construction; a restarted replica asks its peers what it missed."""
        self._now_ms = now_ms
        if self.last_executed > 0 or self._log:
            self._messages.append(Broadcast(FetchBlocks(self.last_executed + 1, self.index)))
        return self._flush()

    def submit(self, tx: Transaction, now_ms: int) -> list[Action]:
        """A client transaction reached this node (already checked by the host)."""
        return self.submit_many((tx,), now_ms)

    def submit_many(self, txs: Iterable[Transaction], now_ms: int) -> list[Action]:
        """Client transactions that reached this node together (a gossip batch, checked by the
        host): a primary with room in its pipeline proposes them together, not the first alone."""
        self._now_ms = now_ms
        added = False
        for tx in txs:
            if tx.id in self._pending or tx.id in self._committed_ids:
                self.rejected["duplicate-transaction"] += 1
            elif len(self._pending) >= self.config.pending_max:
                self.rejected["pending-full"] += 1
            else:
                self._pending[tx.id] = (tx, now_ms)
                added = True
        if not added:
            return []
        if self._timers.progress_deadline_ms is None:
            self._refresh_progress_deadline()
        self._maybe_propose()
        return self._flush()

    def end_epoch(self, last_height: int) -> None:
        """A change of the validator set passed: this epoch orders blocks up to ``last_height``
        and no further (``p2pmed.ledger.contracts.membership`` says why no slot above it can
        be in flight), and its primary fills the heights up to it without waiting."""
        assert self.epoch_last in (None, last_height), "an epoch ends once"
        assert last_height >= self.last_executed and all(sequence <= last_height for sequence in self._log), (
            "a slot above the end of the epoch is in flight"
        )
        self.epoch_last = last_height

    def discard(self, tx_ids: Iterable[bytes]) -> None:
        """Forget pending transactions that can no longer commit (another transaction
        took their nonce), so that waiting for them does not make us suspect the primary."""
        for tx_id in tx_ids:
            self._pending.pop(tx_id, None)
            self._forwarded.pop(tx_id, None)
        self._refresh_progress_deadline()

    def state_advanced(self, now_ms: int) -> list[Action]:
        """The host executed blocks: take up the pre-prepares that waited for them, and
        propose if the primary waited for them too."""
        self._now_ms = now_ms
        executed = self._commitments.executed_height()
        for sequence in sorted(self._awaiting_state):
            pre_prepare = self._awaiting_state[sequence]
            if sequence > self.last_executed and pre_prepare.proposal.state.height > executed:
                continue
            del self._awaiting_state[sequence]
            self._take_up(pre_prepare, "pre-prepare")
        self._maybe_propose()
        return self._flush()

    def receive(self, sender: int, data: bytes, now_ms: int) -> list[Action]:
        """Bytes from validator ``sender`` (the transport authenticated who sent them)."""
        try:
            message = decode_message(data)
        except codec.CodecError as error:
            self.rejected["malformed"] += 1
            self._note(f"malformed message from {sender}: {error}")
            return []
        return self.deliver(sender, message, now_ms)

    def deliver(self, sender: int, message: Message, now_ms: int) -> list[Action]:
        """A decoded, not yet verified message from validator ``sender``."""
        self._now_ms = now_ms
        self.received[message_kind(message)] += 1
        if not isinstance(message, FetchBlocks):
            self._timers.heard(now_ms)
        try:
            self._dispatch(sender, message)
        except InvalidMessage as error:
            self.rejected["invalid"] += 1
            self._note(f"invalid message from {sender}: {error.reason}")
        return self._flush()

    def tick(self, now_ms: int) -> list[Action]:
        self._now_ms = now_ms
        match self.view_phase:
            case ViewPhase.ACTIVE:
                if self._timers.progress_expired(now_ms):
                    self._suspect_primary()
            case ViewPhase.CHANGING:
                if self._timers.view_change_expired(now_ms):
                    self._start_view_change(self.view + 1)
            case _:
                assert_never(self.view_phase)
        self._maybe_propose()
        if self._timers.retransmit_expired(now_ms):
            self._retransmit()
        if self._timers.sync_expired(now_ms):
            self._request_blocks()
        assert self.next_deadline_ms() > now_ms, "tick must leave no work due"
        return self._flush()

    def next_deadline_ms(self) -> int:
        """When ``tick`` next has work to do."""
        deadline_ms = self._timers.next_deadline_ms(self.view_phase)
        if self._can_propose():
            oldest = next(iter(self._unproposed()), None)
            if oldest is not None:
                deadline_ms = min(deadline_ms, self._pending[oldest.id][1] + self.config.batch_delay_ms)
            heartbeat_ms = self._heartbeat_at_ms()
            if heartbeat_ms is not None:
                deadline_ms = min(deadline_ms, heartbeat_ms)
        return deadline_ms

    def note_log(self) -> list[str]:
        """Recent reasons messages were dropped (for the host's debug log)."""
        notes, self._notes = self._notes, []
        return notes

    # -- dispatch -------------------------------------------------------------

    def _dispatch(self, sender: int, message: Message) -> None:
        if isinstance(message, Blocks):
            self._on_blocks(sender, message)
            return
        if isinstance(message, Proposal):
            self._on_proposal(message)
            return
        signer = message.vote.replica if isinstance(message, PrePrepare) else message.replica
        self._require_sender(sender, signer)
        match message:
            case Vote():
                self._on_vote(message)
            case PrePrepare():
                self._on_pre_prepare(message)
            case Checkpoint():
                self._on_checkpoint(message)
            case ViewChange():
                self._on_view_change(message)
            case NewView():
                self._on_new_view(message)
            case FetchBlocks():
                self._on_fetch_blocks(message)
            case FetchProposal():
                self._on_fetch_proposal(message)
            case Forward():
                self._on_forward(message)
            case _:
                assert_never(message)

    def _on_fetch_blocks(self, fetch: FetchBlocks) -> None:
        """Serve a peer at most once per ``fetch_serve_interval_ms``: an answer costs up to
        ``FETCH_BYTES_MAX`` of reading and sending, a request 47 bytes."""
        served_ms = self._fetch_served_at_ms.get(fetch.replica)
        if served_ms is not None and self._now_ms - served_ms < self.config.fetch_serve_interval_ms:
            self.rejected["fetch-too-often"] += 1
            return
        self._fetch_served_at_ms[fetch.replica] = self._now_ms
        self._decided.append(ServeBlocks(fetch.replica, fetch.from_height))

    def _on_forward(self, forward: Forward) -> None:
        """A backup's oldest waiting transactions: proposed before this primary's own queue.
        Taken once per half a request timeout from each backup (what an honest one sends while
        it probes), so a backup can move at most ``FORWARD_TXS_MAX`` transactions ahead, and
        makes this replica check only as many signatures, per interval."""
        if not self.is_primary or self.view_phase is not ViewPhase.ACTIVE:
            self.rejected["forward-not-primary"] += 1
            return
        taken_ms = self._forward_taken_at_ms.get(forward.replica)
        if taken_ms is not None and self._now_ms - taken_ms < self.config.request_timeout_ms // 2:
            self.rejected["forward-too-often"] += 1
            return
        self._forward_taken_at_ms[forward.replica] = self._now_ms
        for tx in forward.txs:
            if tx.id in self._committed_ids:
                continue
            if tx.id not in self._pending:
                if not self._tx_check(tx):
                    raise InvalidMessage(f"forward carries invalid transaction {tx.id.hex()[:16]}")
                self._pending[tx.id] = (tx, self._now_ms)
            self._forwarded[tx.id] = None
        self._maybe_propose()

    def _forward_oldest(self) -> None:
        """Hand the primary our oldest pending transactions that no proposal carries (any one
        fits a forward: ``FORWARD_BYTES_MAX`` is at least ``codec.TX_SIZE_MAX``)."""
        txs, _ = self._oldest_unproposed(FORWARD_TXS_MAX, FORWARD_BYTES_MAX)
        if txs:
            self._messages.append(Send(self.primary, Forward(tuple(txs), self.index)))

    def _require_sender(self, sender: int, replica: int) -> None:
        if sender != replica:
            raise InvalidMessage(f"replica {sender} relayed a message signed by {replica}")

    def _in_window(self, sequence: int) -> bool:
        if self.epoch_last is not None and sequence > self.epoch_last:
            return False
        return self.stable_sequence < sequence <= self.stable_sequence + self.config.watermark_window

    # -- normal case ----------------------------------------------------------

    def _unproposed(self) -> list[Transaction]:
        """Pending transactions in no proposal of the log: those backups forwarded first, then
        the rest by arrival."""
        in_flight = {tx.id for slot in self._log.values() if slot.proposal for tx in slot.proposal.txs}
        forwarded = [self._pending[tx_id][0] for tx_id in self._forwarded if tx_id not in in_flight]
        return forwarded + [
            tx for tx_id, (tx, _) in self._pending.items() if tx_id not in in_flight and tx_id not in self._forwarded
        ]

    def _can_propose(self) -> bool:
        return (
            self.is_primary
            and self.view_phase is ViewPhase.ACTIVE
            and self._in_window(self._next_sequence)
            and self._next_sequence - self.last_executed <= self.config.pipeline_max
            and self._next_sequence - STATE_LAG_MAX <= self._commitments.executed_height()
        )

    def _next_batch(self) -> tuple[list[Transaction], bool]:
        """The oldest unproposed transactions that fit one block, and whether the block is full
        (so it need not wait for more)."""
        return self._oldest_unproposed(self.config.batch_size_max, self.config.block_bytes_max)

    def _oldest_unproposed(self, count_max: int, bytes_max: int) -> tuple[list[Transaction], bool]:
        """The oldest unproposed transactions that fit ``count_max`` and ``bytes_max`` (a block,
        a forward), and whether they are full (a block that need not wait for more)."""
        batch: list[Transaction] = []
        size = 0
        for tx in self._unproposed():
            if len(batch) == count_max or size + len(tx.encoded) > bytes_max:
                return batch, True
            batch.append(tx)
            size += len(tx.encoded)
        return batch, len(batch) == count_max

    def _maybe_propose(self) -> None:
        """Propose while the window and pipeline allow: a full batch now, a partial one once its
        oldest transaction waited ``batch_delay_ms``, and whatever waits (even nothing) once the
        heartbeat is due: a block is owed then, and the deadline ``next_deadline_ms`` gave
        ``tick`` was the heartbeat's."""
        while self._can_propose():
            batch, full = self._next_batch()
            heartbeat_ms = self._heartbeat_at_ms()
            owed = heartbeat_ms is not None and self._now_ms >= heartbeat_ms
            if not batch:
                if owed:
                    self._propose(())
                return
            overdue = batch[0].id in self._forwarded  # forwarded ones come first, and waited at a backup
            if (
                not (full or owed or overdue)
                and self._now_ms < self._pending[batch[0].id][1] + self.config.batch_delay_ms
            ):
                return
            self._propose(tuple(batch))

    def _heartbeat_at_ms(self) -> int | None:
        """When an idle primary proposes an empty block, so that ledger time (and with it every
        expiry) moves on without traffic: ``heartbeat_interval_ms`` after the last block, if
        nothing is in flight and the chain has begun; ``batch_delay_ms`` after it while the
        epoch is ending, so that the new validator set takes over on an idle network too."""
        if self._next_sequence != self.last_executed + 1:
            return None
        if self.epoch_last is not None:
            return self.last_block_time_ms + self.config.batch_delay_ms
        if not self.config.heartbeat_interval_ms or self.last_executed == 0:
            return None
        return self.last_block_time_ms + self.config.heartbeat_interval_ms

    def _propose(self, batch: tuple[Transaction, ...]) -> None:
        time_ms = max(self._now_ms, self._time_floor_ms(self._next_sequence) + 1)
        state = self._commitments.commitment(min(self._next_sequence - 1, self._commitments.executed_height()))
        assert state is not None, "the host keeps the outcome of the blocks it executed"
        proposal = Proposal(self._next_sequence, time_ms, self._signer.public_key, batch, state)
        pre_prepare = PrePrepare(self._vote(VoteKind.PRE_PREPARE, proposal.height, proposal.digest), proposal)
        slot = self._slot(proposal.height)
        assert slot.pre_prepare is None, "one pre-prepare per view and sequence number"
        assert slot.certificate is None, f"proposing over block {proposal.height}, already decided"
        slot.pre_prepare, slot.header = pre_prepare.vote, proposal.header
        self._keep_body(proposal)
        self._persist_slot(proposal.height)
        self._messages.append(Broadcast(pre_prepare))
        self._next_sequence += 1
        self._check_prepared(proposal.height)  # alone in a network of one, it is its own quorum

    def _admits(self, vote: Vote) -> bool:
        """The gate every vote passes: one from a later view only counts towards noticing
        that we missed a view change; the rest must be of our active view, inside the
        watermarks and above what we executed."""
        if vote.view > self.view:
            self.validators.check_signed(vote)
            self._note_view(vote.replica, vote.view)
            return False
        return (
            vote.view == self.view
            and self.view_phase is ViewPhase.ACTIVE
            and self._in_window(vote.sequence)
            and vote.sequence > self.last_executed
        )

    def _on_pre_prepare(self, pre_prepare: PrePrepare) -> None:
        vote = pre_prepare.vote
        if not self._admits(vote):
            self._keep_early(pre_prepare)
            return
        self.validators.check_pre_prepare(pre_prepare)
        self._note_ahead(vote.replica, vote.sequence)
        slot = self._slot(vote.sequence)
        if slot.pre_prepare is not None:
            if slot.pre_prepare.digest != vote.digest:
                raise InvalidMessage(f"primary {vote.replica} equivocated at view {vote.view} sequence {vote.sequence}")
            if slot.proposal is None:  # the new-view named it by digest: here are its transactions
                self._keep_body(pre_prepare.proposal)
                self._execute_ready()
            return
        if slot.certificate is not None and slot.certificate.commits[0].digest != vote.digest:
            raise InvalidMessage(f"pre-prepare at {vote.sequence} contradicts a block already decided there")
        if not check_commitment(self._commitments, pre_prepare.proposal.state, vote.sequence):
            held = self._awaiting_state.get(vote.sequence)
            if held is None or held.vote.view < vote.view:
                self._awaiting_state[vote.sequence] = pre_prepare
            return
        self._check_proposal(pre_prepare.proposal, vote.sequence)
        self._check_time(pre_prepare.proposal.time_ms, vote.sequence)
        slot.pre_prepare, slot.header = vote, pre_prepare.proposal.header
        self._keep_body(pre_prepare.proposal)
        if not self.is_primary:
            slot.my_prepare = self._vote(VoteKind.PREPARE, vote.sequence, vote.digest)
            slot.prepares[self.index] = slot.my_prepare
            self._persist_slot(vote.sequence)
            self._messages.append(Broadcast(slot.my_prepare))
        self._check_prepared(vote.sequence)

    def _take_up(self, pre_prepare: PrePrepare, what: str) -> None:
        """Handle a pre-prepare that waited here (its sender was checked when it came)."""
        try:
            self._on_pre_prepare(pre_prepare)
        except InvalidMessage as error:
            self.rejected["invalid"] += 1
            self._note(f"invalid {what} from {pre_prepare.vote.replica}: {error.reason}")

    def _check_proposal(self, proposal: Proposal, sequence: int) -> None:
        if proposal.proposer != self.validators.keys[self.primary]:
            raise InvalidMessage("proposal names a proposer other than the primary")
        ids = [tx.id for tx in proposal.txs]
        if len(set(ids)) != len(ids):
            raise InvalidMessage("proposal carries a transaction twice")
        taken = {
            tx.id
            for other, slot in self._log.items()
            if other != sequence and slot.proposal and other > self.last_executed
            for tx in slot.proposal.txs
        }
        for tx in proposal.txs:
            if tx.id in self._committed_ids or tx.id in taken:
                raise InvalidMessage(f"proposal repeats transaction {tx.id.hex()[:16]} already ordered")
            if tx.id not in self._pending and not self._tx_check(tx):
                raise InvalidMessage(f"proposal carries invalid transaction {tx.id.hex()[:16]}")

    def _check_time(self, time_ms: int, sequence: int) -> None:
        """Block time (the ledger's clock for expiries) is validated: a new proposal must be
        dated after the proposals before it, before those after it, and within
        ``block_time_skew_max_ms`` of this replica's clock."""
        skew_ms = self.config.block_time_skew_max_ms
        if not self._now_ms - skew_ms <= time_ms <= self._now_ms + skew_ms:
            raise InvalidMessage(f"proposal dated {time_ms - self._now_ms:+} ms from this replica's clock")
        if time_ms <= self._time_floor_ms(sequence):
            raise InvalidMessage(f"proposal at {sequence} is not dated after the block before it")
        later = [slot.header.time_ms for s, slot in self._log.items() if s > sequence and slot.header is not None]
        if later and time_ms >= min(later):
            raise InvalidMessage(f"proposal at {sequence} is not dated before the blocks after it")

    def _time_floor_ms(self, sequence: int) -> int:
        """The latest time of the blocks and proposals known before ``sequence``."""
        earlier = (
            slot.header.time_ms
            for other, slot in self._log.items()
            if self.last_executed < other < sequence and slot.header is not None
        )
        return max(earlier, default=self.last_block_time_ms)

    def _on_vote(self, vote: Vote) -> None:
        if vote.kind is VoteKind.PRE_PREPARE:
            raise InvalidMessage("a pre-prepare vote must come with its proposal")
        if not self._admits(vote):
            return
        if vote.kind is VoteKind.PREPARE and vote.replica == self.primary:
            raise InvalidMessage("the primary does not send prepares")
        self.validators.check_signed(vote)
        self._note_ahead(vote.replica, vote.sequence)
        slot = self._slot(vote.sequence)
        votes = slot.prepares if vote.kind is VoteKind.PREPARE else slot.commits
        existing = votes.get(vote.replica)
        if existing is not None:
            if existing.digest != vote.digest:
                raise InvalidMessage(f"replica {vote.replica} sent conflicting {vote.kind.value} votes")
            return
        votes[vote.replica] = vote
        self._check_prepared(vote.sequence)

    def _matching(self, votes: dict[int, Vote], digest: bytes) -> list[Vote]:
        return sorted(
            (vote for vote in votes.values() if vote.view == self.view and vote.digest == digest),
            key=lambda vote: vote.replica,
        )

    def _check_prepared(self, sequence: int) -> None:
        slot = self._log[sequence]
        if slot.pre_prepare is None:
            return
        digest = slot.pre_prepare.digest
        if slot.my_commit is None:
            prepares = [vote for vote in self._matching(slot.prepares, digest) if vote.replica != self.primary]
            if len(prepares) < self.validators.quorum - 1:
                return
            assert slot.header is not None, "a pre-prepare comes with its header"
            slot.prepared_certificate = PreparedCertificate(
                slot.pre_prepare, tuple(prepares[: self.validators.quorum - 1]), slot.header
            )
            slot.my_commit = self._vote(VoteKind.COMMIT, sequence, digest)
            slot.commits[self.index] = slot.my_commit
            self._persist_slot(sequence)
            self._messages.append(Broadcast(slot.my_commit))
        if slot.certificate is None:
            commits = self._matching(slot.commits, digest)
            if len(commits) >= self.validators.quorum:
                slot.certificate = CommitCertificate(tuple(commits[: self.validators.quorum]))
                self._execute_ready()

    def _execute_ready(self) -> None:
        while True:
            slot = self._log.get(self.last_executed + 1)
            if slot is None or slot.certificate is None or slot.pre_prepare is None:
                self._notice_gap()
                return
            proposal = slot.proposal
            if proposal is None:  # decided on a digest a new-view named; _fetch_bodies asks for it
                return
            self._apply(
                Block(proposal.block_header(self.validators.chain_id, self.last_block_hash), proposal.txs),
                slot.certificate,
            )

    def _notice_gap(self) -> None:
        """A decided slot above one we cannot execute: we missed messages, so fetch blocks."""
        decided = [(s, slot) for s, slot in self._log.items() if s > self.last_executed + 1 and slot.certificate]
        if decided and not self._timers.syncing:
            sequence, slot = max(decided, key=lambda item: item[0])
            assert slot.certificate is not None
            voters = {vote.replica for vote in slot.certificate.commits}
            self._behind(sequence, voters)
            self._timers.sync_after_interval(self._now_ms)

    def _apply(self, block: Block, certificate: CommitCertificate) -> None:
        assert block.height == self.last_executed + 1, "blocks execute in order"
        self._decided.append(CommitBlock(block, certificate))
        self.last_executed = block.height
        self.last_block_hash = block.hash
        self.last_block_time_ms = block.header.time_ms
        self._executed_digests[block.height] = certificate.commits[0].digest
        arrivals_ms = []
        for tx in block.txs:
            waited = self._pending.pop(tx.id, None)
            self._forwarded.pop(tx.id, None)
            if waited is not None:
                arrivals_ms.append(waited[1])
            self._committed_ids[tx.id] = None
        if arrivals_ms and self._pending:
            oldest_arrival_ms = next(iter(self._pending.values()))[1]
            self._timers.note_served(self._now_ms, min(arrivals_ms), oldest_arrival_ms)
        while len(self._committed_ids) > self.config.committed_ids_max:
            del self._committed_ids[next(iter(self._committed_ids))]
        self._next_sequence = max(self._next_sequence, block.height + 1)
        self._timers.block_executed(self._now_ms - min(arrivals_ms) if arrivals_ms else None)
        self._refresh_progress_deadline()
        if self._timers.syncing and self.last_executed >= self._sync_target():
            self._timers.stop_sync()
        if block.height % self.config.checkpoint_interval == 0:
            checkpoint = self._sign(Checkpoint(block.height, block.hash, self.index, bytes(64)))
            self._my_checkpoints[block.height] = block.hash
            self._my_latest_checkpoint = checkpoint
            self._messages.append(Broadcast(checkpoint))
            self._on_checkpoint(checkpoint)
        self._maybe_stabilize()

    # -- checkpoints and garbage collection ------------------------------------

    def _keep_early(self, pre_prepare: PrePrepare) -> None:
        """Keep a pre-prepare of the view after ours, or of the view we are changing to, from
        that view's primary, inside the watermarks: at most one per sequence, checked in full
        when the view starts."""
        vote = pre_prepare.vote
        changing_to = vote.view == self.view and self.view_phase is ViewPhase.CHANGING
        if not (changing_to or vote.view == self.view + 1) or vote.replica != self.validators.primary(vote.view):
            return
        if not self._in_window(vote.sequence) or vote.sequence <= self.last_executed:
            return
        if changing_to:  # a later view's vote had its signature checked by ``_admits`` already
            self.validators.check_signed(vote)
        held = self._early.get(vote.sequence)
        if held is None or held.vote.view <= vote.view:
            self._early[vote.sequence] = pre_prepare

    def _on_checkpoint(self, checkpoint: Checkpoint) -> None:
        if checkpoint.sequence <= self.stable_sequence or checkpoint.sequence % self.config.checkpoint_interval:
            return
        if checkpoint.replica != self.index:
            self.validators.check_signed(checkpoint)
        self._note_ahead(checkpoint.replica, checkpoint.sequence)
        horizon = self.stable_sequence + 4 * self.config.watermark_window
        if checkpoint.sequence <= horizon:
            self._checkpoint_votes.setdefault(checkpoint.sequence, {})[checkpoint.replica] = checkpoint
        else:  # noted as a claim of how far the sender got, not kept as a vote
            self.rejected["checkpoint-far-ahead"] += 1
        self._maybe_stabilize()

    def _maybe_stabilize(self) -> None:
        for sequence in sorted(self._checkpoint_votes, reverse=True):
            if sequence > self.last_executed or sequence <= self.stable_sequence:
                continue
            votes = self._checkpoint_votes[sequence]
            my_hash = self._my_checkpoints.get(sequence)
            matching = tuple(sorted((c for c in votes.values() if c.block_hash == my_hash), key=lambda c: c.replica))
            if len(matching) >= self.validators.quorum:
                self._make_stable(sequence, matching[: self.validators.quorum])
                self._maybe_propose()  # the window moved up
                return

    def _make_stable(self, sequence: int, proof: tuple[Checkpoint, ...]) -> None:
        assert sequence > self.stable_sequence
        self.stable_sequence, self._stable_proof = sequence, proof
        self._records["stable"] = codec.encode(StableRecord(sequence, proof))
        for old in [s for s in self._log if s <= sequence]:
            self._drop_slot(old)
        for table in (self._checkpoint_votes, self._my_checkpoints, self._executed_digests):
            for old in [s for s in table if s < sequence]:
                del table[old]

    # -- view change ----------------------------------------------------------

    def _refresh_progress_deadline(self) -> None:
        """A backup expects its oldest pending transaction to commit within the request
        timeout of its arrival, or of the last block that committed transactions about as
        old (PBFT restarts the timer on execution): a primary working through a backlog
        in arrival order is not suspected, one that orders newer transactions while an
        older one starves is, a stopped one is."""
        if self.is_primary or self.view_phase is not ViewPhase.ACTIVE or not self._pending:
            self._timers.stop_progress()
            return
        oldest_id, (_, arrival_ms) = next(iter(self._pending.items()))
        self._timers.arm_progress(arrival_ms, probing=self._probed_for == oldest_id)

    def _suspect_primary(self) -> None:
        """The oldest pending transaction waited too long. Not while blocks fetched from peers
        are still arriving; otherwise first make sure we are not simply behind (ask every
        peer for blocks after our head) and that the primary has it (forward it), and if
        that brings nothing, change view."""
        if self._timers.hold_for_fetched_blocks(self._now_ms):
            # Still fetching blocks that peers committed: our transaction may be in one of
            # them. A node catching up after a restart must not blame a primary that did its job.
            return
        oldest_id = next(iter(self._pending))
        if self._probed_for != oldest_id:
            self._probed_for = oldest_id
            self._messages.append(Broadcast(FetchBlocks(self.last_executed + 1, self.index)))
            self._forward_oldest()
            self._timers.start_probe(self._now_ms)
            return
        self._start_view_change(self.view + 1)

    def _start_view_change(self, new_view: int) -> None:
        assert new_view > self.view or (new_view == self.view and self.view_phase is ViewPhase.ACTIVE)
        self.view, self.view_phase = new_view, ViewPhase.CHANGING
        self.view_changes_started += 1
        self._timers.view_change_started()
        self._new_view = None
        for slot in self._log.values():
            slot.reset_view()
        view_change = self._sign(
            ViewChange(
                new_view, self.stable_sequence, self._stable_proof, self._prepared_certificates(), self.index, bytes(64)
            )
        )
        self._view_changes[self.index] = view_change
        self._view_changes_checked.add(self.index)
        self._persist_view()
        self._messages.append(Broadcast(view_change))
        self._maybe_new_view()

    def _prepared_certificates(self) -> tuple[PreparedCertificate, ...]:
        """Everything that prepared here above the stable checkpoint: a view change must
        carry it, or a block that committed elsewhere could be replaced (§4.4)."""
        return tuple(
            slot.prepared_certificate
            for sequence, slot in sorted(self._log.items())
            if slot.prepared_certificate is not None and self._in_window(sequence)
        )

    def _on_view_change(self, view_change: ViewChange) -> None:
        if view_change.new_view < self.view or (
            view_change.new_view == self.view and self.view_phase is ViewPhase.ACTIVE
        ):
            if view_change.new_view == self.view and self._new_view is not None and self.is_primary:
                self._messages.append(Send(view_change.replica, self._new_view))
            return
        known = self._view_changes.get(view_change.replica)
        if known is not None and known.new_view >= view_change.new_view:
            if known.new_view > view_change.new_view:  # a replay: its sender has moved past it
                self.rejected["view-change-stale"] += 1
            return
        if view_change.new_view > self.view + 1:
            # Far ahead: it counts towards the f+1 that move us, at the cost of one signature;
            # its certificates are checked only if we use it (``_checked_view_changes``).
            self.validators.check_signed(view_change)
            self.rejected["view-change-far-ahead"] += 1
            self._view_changes_checked.discard(view_change.replica)
        else:
            self.validators.check_view_change(view_change, self.config.watermark_window)
            self._view_changes_checked.add(view_change.replica)
        self._view_changes[view_change.replica] = view_change
        ahead = sorted(
            vc.new_view for r, vc in self._view_changes.items() if r != self.index and vc.new_view > self.view
        )
        if len(ahead) >= self.validators.f + 1:
            self._start_view_change(ahead[0])
        self._maybe_new_view()

    def _checked_view_changes(self) -> list[ViewChange]:
        """The view changes for our view, their certificates checked (now, if they came
        while far ahead); one that fails is dropped and counted."""
        checked = []
        for replica, view_change in list(self._view_changes.items()):
            if view_change.new_view != self.view:
                continue
            if replica not in self._view_changes_checked:
                try:
                    self.validators.check_view_change(view_change, self.config.watermark_window)
                except InvalidMessage as error:
                    del self._view_changes[replica]
                    self.rejected["invalid"] += 1
                    self._note(f"invalid view change from {replica}: {error.reason}")
                    continue
                self._view_changes_checked.add(replica)
            checked.append(view_change)
        return checked

    def _maybe_new_view(self) -> None:
        if self.view_phase is ViewPhase.ACTIVE:
            return
        view_changes = sorted(self._checked_view_changes(), key=lambda vc: vc.replica)[: self.validators.quorum]
        if len(view_changes) < self.validators.quorum:
            return
        # §4.5.2: wait for the new primary only once a quorum wants this view, so a
        # replica alone in a view change does not race ahead through views.
        self._timers.arm_view_change(self._now_ms)
        if not self.is_primary or self._new_view is not None:
            return
        low, selected = selected_proposals(view_changes)
        high = max(selected, default=low)
        key = self._signer.public_key
        headers = []
        for sequence in range(low + 1, high + 1):
            header = selected.get(sequence)
            headers.append(header or Proposal(sequence, self._now_ms, key, (), self._genesis_state()).header)
        votes = tuple(self._vote(VoteKind.PRE_PREPARE, header.height, header_digest(header)) for header in headers)
        new_view = self._sign(NewView(self.view, tuple(view_changes), votes, tuple(headers), self.index, bytes(64)))
        self._records["new-view"] = codec.encode(new_view)
        self._messages.append(Broadcast(new_view))
        self._enter_view(new_view)
        for vote in votes:  # the transactions of what it re-proposes, one frame each
            proposal = self._log[vote.sequence].proposal if vote.sequence in self._log else None
            if proposal is not None and proposal.txs:
                self._messages.append(Broadcast(PrePrepare(vote, proposal)))

    def _on_new_view(self, new_view: NewView) -> None:
        if new_view.view < self.view or (new_view.view == self.view and self.view_phase is ViewPhase.ACTIVE):
            return
        self.validators.check_new_view(new_view, self.config.watermark_window)
        low, selected = selected_proposals(new_view.view_changes)
        high = max(selected, default=low)
        if [header.height for header in new_view.headers] != list(range(low + 1, high + 1)):
            raise InvalidMessage("new-view re-proposes the wrong sequence numbers")
        primary_key = self.validators.keys[new_view.replica]
        for header in new_view.headers:
            expected = selected.get(header.height)
            if expected is not None and header != expected:
                raise InvalidMessage(f"new-view drops the prepared proposal at {header.height}")
            if expected is None and not (header.empty and header.proposer == primary_key):
                raise InvalidMessage(f"new-view fills {header.height} with a non-empty proposal")
            if expected is None and header.state != self._genesis_state():
                raise InvalidMessage(f"new-view's empty block at {header.height} does not commit to genesis")
            if expected is None and header.time_ms > self._now_ms + self.config.block_time_skew_max_ms:
                raise InvalidMessage(f"new-view dates its empty block at {header.height} in the future")
        self._enter_view(new_view)

    def _enter_view(self, new_view: NewView) -> None:
        """Start ``new_view`` (one we sent, or a valid one received): the only way into ACTIVE."""
        assert new_view.view > self.view or (new_view.view == self.view and self.view_phase is ViewPhase.CHANGING)
        self.view, self.view_phase, self._new_view = new_view.view, ViewPhase.ACTIVE, new_view
        self._timers.view_entered()
        self._persist_view()
        low = max(vc.stable_sequence for vc in new_view.view_changes)
        if low > self.stable_sequence:
            proof = next(vc.checkpoint_proof for vc in new_view.view_changes if vc.stable_sequence == low)
            if low > self.last_executed:
                self._behind(low, {vc.replica for vc in new_view.view_changes if vc.stable_sequence == low})
            self._adopt_stable(low, proof)
        for stale in [s for s, slot in self._log.items() if slot.certificate is None and s > self.last_executed]:
            if stale > low + len(new_view.pre_prepares):
                self._drop_slot(stale)
        for vote, header in zip(new_view.pre_prepares, new_view.headers, strict=True):
            self._accept_new_view_pre_prepare(vote, header)
        self._next_sequence = max(self.last_executed, low + len(new_view.pre_prepares)) + 1
        # A new primary gets a full timeout for everything still waiting (§4.5.2).
        self._pending = {tx_id: (tx, self._now_ms) for tx_id, (tx, _) in self._pending.items()}
        self._probed_for = None
        self._refresh_progress_deadline()
        early, self._early = self._early, {}
        for sequence in sorted(early):
            if early[sequence].vote.view == self.view:  # its signer is this view's primary
                self._take_up(early[sequence], "early pre-prepare")
        self._execute_ready()
        self._maybe_propose()

    def _adopt_stable(self, sequence: int, proof: tuple[Checkpoint, ...]) -> None:
        if sequence <= self.last_executed:
            my_hash = self._my_checkpoints.get(sequence)
            assert my_hash is None or my_hash == proof[0].block_hash, "a quorum checkpoint disagrees with our chain"
        self._make_stable(sequence, proof)

    def _accept_new_view_pre_prepare(self, vote: Vote, header: ProposalHeader) -> None:
        sequence, digest = vote.sequence, vote.digest
        if sequence <= self.stable_sequence:
            return
        executed = self._executed_digests.get(sequence)
        assert executed is None or executed == digest, f"new view re-proposes a different block at executed {sequence}"
        slot = self._slot(sequence)
        decided = slot.certificate
        assert decided is None or decided.commits[0].digest == digest, f"new view replaces decided {sequence}"
        slot.reset_view()
        slot.pre_prepare, slot.header = vote, header
        if header.empty and digest not in slot.bodies:
            self._keep_body(Proposal(header.height, header.time_ms, header.proposer, (), header.state))
        if not self.is_primary:
            slot.my_prepare = self._vote(VoteKind.PREPARE, sequence, digest)
            slot.prepares[self.index] = slot.my_prepare
            self._messages.append(Broadcast(slot.my_prepare))
        self._persist_slot(sequence)

    def _note_view(self, replica: int, view: int) -> None:
        """Votes of f+1 replicas in later views mean we missed a view change (e.g. while
        down): ask to join the (f+1)-th highest such view; its primary answers with NEW-VIEW."""
        if replica == self.index or view <= self._later_views.get(replica, -1):
            return
        self._later_views[replica] = view
        views = sorted((v for v in self._later_views.values() if v > self.view), reverse=True)
        if len(views) >= self.validators.f + 1:
            self._later_views.clear()
            self._start_view_change(views[self.validators.f])

    # -- state transfer -------------------------------------------------------

    def _note_ahead(self, replica: int, sequence: int) -> None:
        """Remember how far each peer has got; f+1 peers ahead means we are behind."""
        if replica == self.index or sequence <= self._ahead.get(replica, 0):
            return
        self._ahead[replica] = sequence
        if self._sync_target() > self.last_executed + self.config.pipeline_max and not self._timers.syncing:
            self._timers.sync_at(self._now_ms)

    def _sync_target(self) -> int:
        """A sequence at least one honest replica has reached: the (f+1)-th highest that
        peers have shown. One Byzantine replica claiming 2^60 moves it nowhere."""
        shown = sorted(self._ahead.values(), reverse=True)
        return shown[self.validators.f] if len(shown) > self.validators.f else 0

    def _behind(self, sequence: int, sources: set[int]) -> None:
        """``sources`` signed for ``sequence`` (votes of a quorum, checkpoints of a proof):
        they have reached it; fetch the blocks up to it."""
        for source in sources - {self.index}:
            self._ahead[source] = max(self._ahead.get(source, 0), sequence)
        if not self._timers.syncing:
            self._timers.sync_at(self._now_ms)

    def _request_blocks(self) -> None:
        if self._continue_from is not None:  # it proved it has more: valid blocks and ``more``
            self._messages.append(Send(self._continue_from, FetchBlocks(self.last_executed + 1, self.index)))
            self._continue_from = None
            self._timers.sync_after_interval(self._now_ms)
            return
        sources = sorted(r for r, s in self._ahead.items() if s > self.last_executed)
        if not sources or self._sync_target() <= self.last_executed:
            self._timers.stop_sync()
            return
        source = sources[(self._now_ms // self.config.retransmit_interval_ms) % len(sources)]
        self._messages.append(Send(source, FetchBlocks(self.last_executed + 1, self.index)))
        self._timers.sync_after_interval(self._now_ms)

    def _on_blocks(self, sender: int, message: Blocks) -> None:
        advanced = False
        for item in message.blocks:
            if item.block.height <= self.last_executed:
                continue
            if item.block.height != self.last_executed + 1:
                raise InvalidMessage(f"blocks from {sender} skip height {self.last_executed + 1}")
            self.validators.check_committed_block(item.block, item.certificate, self.last_block_hash)
            self._note_ahead(sender, item.block.height)
            slot = self._log.get(item.block.height)
            if (
                slot is not None
                and slot.pre_prepare is not None
                and slot.pre_prepare.digest != item.certificate.commits[0].digest
            ):
                slot.reset_view()
            self._apply(item.block, item.certificate)
            self._timers.block_fetched(self._now_ms)
            advanced = True
        if advanced and message.more:  # cut short: ask the same peer again once it serves us again
            self._behind(self.last_executed + 1, {sender})
            self._continue_from = sender
            self._timers.sync_after_interval(self._now_ms)
        elif not advanced and self._ahead.get(sender, 0) > self.last_executed:
            self._ahead[sender] = self.last_executed  # it showed nothing past our head: its claim decays
        self._execute_ready()

    # -- proposals named by digest ---------------------------------------------

    def _keep_body(self, proposal: Proposal) -> None:
        """Hold (and persist) a proposal for its sequence number. Besides the ones the slot's
        votes and certificates name, keep the most recent few: a replica that prepared one
        in an earlier view may be asked for it when a later new-view selects it again."""
        sequence, slot = proposal.height, self._slot(proposal.height)
        if proposal.digest in slot.bodies:
            return
        slot.bodies[proposal.digest] = proposal
        self._records[_body_key(sequence, proposal.digest)] = codec.encode(proposal)
        named = {slot.pre_prepare.digest if slot.pre_prepare else None, proposal.digest}
        if slot.prepared_certificate is not None:
            named.add(slot.prepared_certificate.pre_prepare.digest)
        if slot.certificate is not None:
            named.add(slot.certificate.commits[0].digest)
        for digest in [d for d in slot.bodies if d not in named][: max(0, len(slot.bodies) - BODIES_PER_SLOT_MAX)]:
            del slot.bodies[digest]
            self._records[_body_key(sequence, digest)] = None

    def _drop_slot(self, sequence: int) -> None:
        slot = self._log.pop(sequence)
        self._records[_slot_key(sequence)] = None
        for digest in slot.bodies:
            self._records[_body_key(sequence, digest)] = None

    def _on_fetch_proposal(self, fetch: FetchProposal) -> None:
        """Serve a proposal this replica holds, within ``FETCH_BYTES_MAX`` per peer per
        ``fetch_serve_interval_ms`` (a request is 80 bytes, an answer up to 4 MiB)."""
        slot = self._log.get(fetch.sequence)
        proposal = slot.bodies.get(fetch.digest) if slot is not None else None
        if proposal is None:
            return
        started_ms, sent = self._proposals_served.get(fetch.replica, (self._now_ms, 0))
        if self._now_ms - started_ms >= self.config.fetch_serve_interval_ms:
            started_ms, sent = self._now_ms, 0
        if sent and sent + proposal.tx_bytes > FETCH_BYTES_MAX:
            self.rejected["fetch-too-often"] += 1
            return
        self._proposals_served[fetch.replica] = (started_ms, sent + proposal.tx_bytes)
        self._messages.append(Send(fetch.replica, proposal))

    def _on_proposal(self, proposal: Proposal) -> None:
        """An answer to ``FetchProposal``: taken only for a digest this replica voted for
        and lacks (the digest is the proof; whoever sent it cannot forge one)."""
        slot = self._log.get(proposal.height)
        if slot is None or slot.pre_prepare is None or slot.proposal is not None:
            self.rejected["unrequested-proposal"] += 1
            return
        if slot.pre_prepare.digest != proposal.digest:
            raise InvalidMessage(f"proposal at {proposal.height} is not the one voted for")
        self._keep_body(proposal)
        self._execute_ready()

    def _fetch_bodies(self) -> None:
        """Ask one peer (a different one each interval) for every proposal we voted for by
        digest and still lack."""
        missing = [
            (sequence, slot.pre_prepare.digest)
            for sequence, slot in sorted(self._log.items())
            if sequence > self.last_executed and slot.pre_prepare is not None and slot.proposal is None
        ]
        peer = self._peer_in_turn(self.config.retransmit_interval_ms)
        if not missing or peer is None:
            return
        for sequence, digest in missing:
            self._messages.append(Send(peer, FetchProposal(sequence, digest, self.index)))

    # -- retransmission -------------------------------------------------------

    def _retransmit(self) -> None:
        if self._timers.head_probe_expired(self._now_ms):
            self._probe_head()
        self._fetch_bodies()
        if self.view_phase is ViewPhase.CHANGING:
            own = self._view_changes.get(self.index)
            if own is not None and own.new_view == self.view:
                self._messages.append(Broadcast(own))
            # Blocks keep being decided in the old view if we are alone here: follow them.
            self._messages.append(Broadcast(FetchBlocks(self.last_executed + 1, self.index)))
            return
        stalled = [s for s, slot in self._log.items() if s > self.last_executed and slot.certificate is None]
        progressed = self._retransmit_height != self.last_executed
        self._retransmit_height = self.last_executed
        latest = self._my_latest_checkpoint
        if latest is not None and latest.sequence > self.stable_sequence:
            self._messages.append(Broadcast(latest))
        if not stalled or progressed:
            # Blocks are executing, so votes are getting through: resending them all now
            # would only add load (on a busy network, enough to cause the stall it fears).
            return
        # No progress for a whole interval: peers may have decided what we missed.
        voters = {
            vote.replica for s in stalled for vote in [*self._log[s].prepares.values(), *self._log[s].commits.values()]
        }
        self._behind(max(stalled), voters - {self.index})
        for sequence, slot in sorted(self._log.items()):
            if sequence <= self.last_executed or slot.certificate is not None:
                continue
            if self.is_primary and slot.pre_prepare is not None and slot.proposal is not None:
                self._messages.append(Broadcast(PrePrepare(slot.pre_prepare, slot.proposal)))
            for vote in (slot.my_prepare, slot.my_commit):
                if vote is not None:
                    self._messages.append(Broadcast(vote))

    def _probe_head(self) -> None:
        peer = self._peer_in_turn(self.config.head_probe_idle_ms)
        if peer is not None:  # None: a network of one, nobody to be behind
            self._messages.append(Send(peer, FetchBlocks(self.last_executed + 1, self.index)))

    def _peer_in_turn(self, interval_ms: int) -> int | None:
        """Another replica, a different one each ``interval_ms`` (None alone in the network)."""
        peers = [r for r in range(self.validators.n) if r != self.index]
        return peers[(self._now_ms // interval_ms) % len(peers)] if peers else None

    # -- helpers --------------------------------------------------------------

    def _slot(self, sequence: int) -> Slot:
        slot = self._log.get(sequence)
        if slot is None:
            slot = self._log[sequence] = Slot()
        return slot

    def _genesis_state(self) -> StateCommitment:
        state = self._commitments.commitment(0)
        assert state is not None, "the host keeps the genesis commitment"
        return state

    def _persist_view(self) -> None:
        self._records["view"] = codec.encode(ViewRecord.of(self.view, self.view_phase))

    def _persist_slot(self, sequence: int) -> None:
        self._records[_slot_key(sequence)] = codec.encode(self._log[sequence].record())

    def _vote(self, kind: VoteKind, sequence: int, digest: bytes) -> Vote:
        return self._sign(Vote(kind, self.view, sequence, digest, self.index, bytes(64)))

    def _sign(self, message: SignedT) -> SignedT:
        """``message`` (built with a placeholder signature) signed by this replica."""
        signature = self._signer.sign(message.domain, self.validators.signing_context, signing_payload(message))
        return with_signature(message, signature)

    def _note(self, text: str) -> None:
        if len(self._notes) < NOTES_MAX:
            self._notes.append(text)

    def _flush(self) -> list[Action]:
        actions: list[Action] = []
        if self._records:
            actions.append(Persist(self._records))
            self._records = {}
        actions.extend(self._messages)
        actions.extend(self._decided)
        self._messages, self._decided = [], []
        return actions

    # -- recovery -------------------------------------------------------------

    def _restore(self, records: Mapping[str, bytes]) -> None:
        """Rebuild from persisted records after a crash (they are our own; decode strictly anyway)."""
        size_max = codec.MESSAGE_SIZE_MAX
        if "view" in records:
            view_record = codec.decode(ViewRecord, records["view"], size_max)
            self.view, self.view_phase = view_record.view, view_record.phase
        if "stable" in records:
            stable = codec.decode(StableRecord, records["stable"], size_max)
            self.stable_sequence, self._stable_proof = stable.sequence, stable.proof
        if "new-view" in records:
            new_view = codec.decode(NewView, records["new-view"], size_max)
            self._new_view = new_view if new_view.view == self.view else None
        for key, data in records.items():
            if key.startswith("proposal/"):
                proposal = codec.decode(Proposal, data, size_max)
                if proposal.height > self.stable_sequence:
                    self._slot(proposal.height).bodies[proposal.digest] = proposal
                continue
            if not key.startswith("slot/"):
                continue
            record = codec.decode(SlotRecord, data, size_max)
            sequence = int(key.removeprefix("slot/"))
            if sequence <= self.stable_sequence:
                continue
            slot = self._slot(sequence)
            slot.prepared_certificate = record.prepared_certificate
            if record.pre_prepare is not None and record.pre_prepare.view == self.view:
                slot.pre_prepare, slot.header, slot.my_prepare, slot.my_commit = (
                    record.pre_prepare,
                    record.header,
                    record.my_prepare,
                    record.my_commit,
                )
                for vote in (record.my_prepare, record.my_commit):
                    if vote is not None and vote.view == self.view:
                        (slot.prepares if vote.kind is VoteKind.PREPARE else slot.commits)[self.index] = vote
        self._next_sequence = max([self.last_executed, *self._log]) + 1
        if self.view_phase is ViewPhase.CHANGING:
            # We crashed during a view change; move on to the next view at the first tick.
            self._timers.expire_view_change(self._now_ms)
