"""The replica's liveness timers: their fields and deadline arithmetic, apart from the protocol
handlers (etcd-raft keeps ``tickElection`` and ``tickHeartbeat`` apart from ``Step`` the same way).

PBFT needs timers for liveness only, never for safety (Castro & Liskov §4.5.2): a timer that
fires too early or too late costs a view change or a retransmission, never a wrong block. Time
is always an argument, in milliseconds of the host's clock; nothing here reads a clock, so the
simulator and the daemon drive the same code. This object says *when*; the replica decides
*what* an expiry means, and changes the timers only through these methods.

- Request (progress) timer, ``progress_deadline_ms``, runs while the view is active and a backup
  has pending transactions: the oldest should commit within ``request_timeout_ms`` of its
  arrival, or of the last block that committed transactions about as old
  (``served_oldest_at_ms``). When it expires the replica first asks every peer for blocks,
  forwards its oldest transactions to the primary, and waits until ``probe_deadline_ms``;
  only then does it change view. While blocks fetched from
  peers keep executing (``fetched_at_ms``) the expiry is put off.
- Request timeout backoff: ``request_timeout_ms`` doubles with each view change started, up to
  ``REQUEST_TIMEOUT_MAX_MS``. If new primaries keep failing, the network may simply be slower
  than the timeout (eventual synchrony), so the timeouts return to their configured values
  only when a block commits a transaction within the configured request timeout of its
  arrival here: the network is as fast again as they assume. A block that merely executes
  proves less: on a network slower than the configured timeout (overloaded, or a slow
  link), each new primary got its first block through only because the timeout had grown,
  and putting it back then voted that primary out too, one view change per block.
- View-change timer, ``view_change_deadline_ms``, runs while the view is changing, from when a
  quorum wants the view; on expiry the replica moves on to the next view. Its timeout doubles
  each time it is armed, up to ``VIEW_CHANGE_TIMEOUT_MAX_MS``, and returns with the request timeout.
- Retransmit timer, ``retransmit_at_ms``: fires every ``retransmit_interval_ms``.
- Head probe: at a retransmit, if no peer was heard for ``head_probe_idle_ms`` (``heard_at_ms``),
  ask one peer for blocks after our head; on an idle network nothing else tells a replica that
  missed blocks it is behind.
- Sync timer, ``sync_at_ms``, runs while fetching blocks (state transfer): when to ask a peer
  again. It is ``None`` exactly when the replica is not fetching.
"""

from __future__ import annotations

from typing import assert_never

from p2pmed.consensus.view_phase import ViewPhase

__all__ = ["REQUEST_TIMEOUT_MAX_MS", "VIEW_CHANGE_TIMEOUT_MAX_MS", "LivenessTimers"]

VIEW_CHANGE_TIMEOUT_MAX_MS = 120_000
REQUEST_TIMEOUT_MAX_MS = 60_000


class LivenessTimers:
    """One replica's timers. Fields are read freely; they change only through the methods."""

    def __init__(
        self,
        *,
        request_timeout_ms: int,
        view_change_timeout_ms: int,
        retransmit_interval_ms: int,
        head_probe_idle_ms: int,
        now_ms: int,
    ) -> None:
        assert request_timeout_ms > 0 and view_change_timeout_ms > 0, "timeouts must be positive"
        assert retransmit_interval_ms > 0 and head_probe_idle_ms > 0, "intervals must be positive"
        self.request_timeout_ms_base = request_timeout_ms
        self.view_change_timeout_ms_base = view_change_timeout_ms
        self.retransmit_interval_ms = retransmit_interval_ms
        self.head_probe_idle_ms = head_probe_idle_ms
        self.request_timeout_ms = request_timeout_ms
        """How long the oldest pending transaction may wait now; see the backoff above."""
        self.view_change_timeout_ms = view_change_timeout_ms
        """How long the next view change may take once armed; doubles each time it is armed."""
        self.progress_deadline_ms: int | None = None
        self.probe_deadline_ms = 0
        """Until when a probe for blocks, sent when the request timer expired, is awaited."""
        self.served_oldest_at_ms = now_ms
        """When a block last committed transactions that arrived here no later than a
        quarter of the request timeout after the oldest one still pending."""
        self.fetched_at_ms: int | None = None
        """When a block fetched from a peer (state transfer) last executed here."""
        self.view_change_deadline_ms: int | None = None
        self.retransmit_at_ms = now_ms + retransmit_interval_ms
        self.heard_at_ms = now_ms
        """When a peer last sent a message other than a request for blocks, or we last probed."""
        self.sync_at_ms: int | None = None

    # -- when ``tick`` has work ------------------------------------------------

    def next_deadline_ms(self, phase: ViewPhase) -> int:
        """The earliest deadline of the timers that run in ``phase``."""
        deadlines_ms = [self.retransmit_at_ms]
        match phase:
            case ViewPhase.ACTIVE:
                if self.progress_deadline_ms is not None:
                    deadlines_ms.append(self.progress_deadline_ms)
            case ViewPhase.CHANGING:
                if self.view_change_deadline_ms is not None:
                    deadlines_ms.append(self.view_change_deadline_ms)
            case _:
                assert_never(phase)
        if self.sync_at_ms is not None:
            deadlines_ms.append(self.sync_at_ms)
        return min(deadlines_ms)

    def progress_expired(self, now_ms: int) -> bool:
        return self.progress_deadline_ms is not None and now_ms >= self.progress_deadline_ms

    def view_change_expired(self, now_ms: int) -> bool:
        return self.view_change_deadline_ms is not None and now_ms >= self.view_change_deadline_ms

    def retransmit_expired(self, now_ms: int) -> bool:
        """Whether the retransmit timer expired; if so, it is rearmed one interval from now."""
        if now_ms < self.retransmit_at_ms:
            return False
        self.retransmit_at_ms = now_ms + self.retransmit_interval_ms
        return True

    def head_probe_expired(self, now_ms: int) -> bool:
        """Whether nothing was heard for the idle interval; if so, the probe counts as hearing."""
        if now_ms - self.heard_at_ms < self.head_probe_idle_ms:
            return False
        self.heard_at_ms = now_ms
        return True

    def sync_expired(self, now_ms: int) -> bool:
        return self.sync_at_ms is not None and now_ms >= self.sync_at_ms

    # -- request (progress) timer ----------------------------------------------

    def heard(self, now_ms: int) -> None:
        """A peer sent something other than a request for blocks."""
        self.heard_at_ms = now_ms

    def arm_progress(self, oldest_arrival_ms: int, *, probing: bool) -> None:
        """The oldest pending transaction arrived at ``oldest_arrival_ms``; ``probing`` when
        a probe for blocks was already sent on its behalf, which it then keeps waiting for."""
        deadline_ms = max(oldest_arrival_ms, self.served_oldest_at_ms) + self.request_timeout_ms
        if probing:
            deadline_ms = max(deadline_ms, self.probe_deadline_ms)
        self.progress_deadline_ms = deadline_ms

    def stop_progress(self) -> None:
        self.progress_deadline_ms = None

    def hold_for_fetched_blocks(self, now_ms: int) -> bool:
        """Whether a fetched block executed less than a request timeout ago; if so, the
        request timer is put off until a request timeout after it."""
        if self.fetched_at_ms is None or now_ms - self.fetched_at_ms >= self.request_timeout_ms_base:
            return False
        self.progress_deadline_ms = self.fetched_at_ms + self.request_timeout_ms_base
        return True

    def start_probe(self, now_ms: int) -> None:
        """A probe for blocks was sent instead of suspecting the primary: wait half a request timeout for it."""
        self.probe_deadline_ms = now_ms + self.request_timeout_ms_base // 2
        self.progress_deadline_ms = self.probe_deadline_ms

    def block_fetched(self, now_ms: int) -> None:
        self.fetched_at_ms = now_ms

    def note_served(self, now_ms: int, served_arrival_ms: int, oldest_arrival_ms: int) -> None:
        """A block committed pending transactions, the earliest of which arrived at
        ``served_arrival_ms``; the oldest still pending arrived at ``oldest_arrival_ms``."""
        if served_arrival_ms <= oldest_arrival_ms + self.request_timeout_ms_base // 4:
            self.served_oldest_at_ms = now_ms

    def block_executed(self, served_wait_ms: int | None) -> None:
        """A block executed; ``served_wait_ms``: how long the longest-waiting transaction it
        committed of ours waited (None: it committed none). If that fits the configured request
        timeout, the timeouts are back to their configured values (see the backoff above)."""
        if served_wait_ms is not None and served_wait_ms <= self.request_timeout_ms_base:
            self.view_change_timeout_ms = self.view_change_timeout_ms_base
            self.request_timeout_ms = self.request_timeout_ms_base

    # -- view-change timer -----------------------------------------------------

    def view_change_started(self) -> None:
        """The replica left its view: the next primary gets twice as long; no timer runs yet."""
        self.request_timeout_ms = min(2 * self.request_timeout_ms, REQUEST_TIMEOUT_MAX_MS)
        self.progress_deadline_ms = None
        self.view_change_deadline_ms = None

    def arm_view_change(self, now_ms: int) -> None:
        """A quorum wants the view being changed to: its primary has one view-change timeout
        (doubled for the next) to start it. Does nothing if the timer already runs."""
        if self.view_change_deadline_ms is not None:
            return
        self.view_change_deadline_ms = now_ms + self.view_change_timeout_ms
        self.view_change_timeout_ms = min(2 * self.view_change_timeout_ms, VIEW_CHANGE_TIMEOUT_MAX_MS)

    def expire_view_change(self, now_ms: int) -> None:
        """Restarted in the middle of a view change: move on to the next view at the first tick."""
        self.view_change_deadline_ms = now_ms

    def view_entered(self) -> None:
        self.view_change_deadline_ms = None

    # -- sync (state transfer) timer -------------------------------------------

    @property
    def syncing(self) -> bool:
        return self.sync_at_ms is not None

    def sync_at(self, at_ms: int) -> None:
        self.sync_at_ms = at_ms

    def sync_after_interval(self, now_ms: int) -> None:
        self.sync_at_ms = now_ms + self.retransmit_interval_ms

    def stop_sync(self) -> None:
        self.sync_at_ms = None
