"""The replica's liveness timers on their own: deadlines, expiries and backoff, time passed in."""

from __future__ import annotations

from p2pmed.consensus import ViewPhase
from p2pmed.consensus.timers import REQUEST_TIMEOUT_MAX_MS, VIEW_CHANGE_TIMEOUT_MAX_MS, LivenessTimers


def timers(now_ms: int = 0, retransmit_interval_ms: int = 300) -> LivenessTimers:
    return LivenessTimers(
        request_timeout_ms=2_000,
        view_change_timeout_ms=2_000,
        retransmit_interval_ms=retransmit_interval_ms,
        head_probe_idle_ms=3_000,
        now_ms=now_ms,
    )


def test_only_the_timer_of_the_current_phase_counts_towards_the_next_deadline() -> None:
    t = timers(retransmit_interval_ms=10_000)
    t.arm_progress(0, probing=False)
    t.arm_view_change(100)
    assert t.next_deadline_ms(ViewPhase.ACTIVE) == 2_000
    assert t.next_deadline_ms(ViewPhase.CHANGING) == 2_100
    t.sync_at(50)
    assert t.next_deadline_ms(ViewPhase.ACTIVE) == t.next_deadline_ms(ViewPhase.CHANGING) == 50


def test_a_view_change_stops_the_request_timer() -> None:
    t = timers()
    t.arm_progress(0, probing=False)
    t.view_change_started()
    assert t.progress_deadline_ms is None and not t.progress_expired(10**9)


def test_the_retransmit_timer_rearms_one_interval_after_it_fires() -> None:
    t = timers()
    assert not t.retransmit_expired(299)
    assert t.retransmit_expired(350)
    assert t.retransmit_at_ms == 650 and not t.retransmit_expired(649)


def test_the_request_timeout_doubles_per_view_change_up_to_its_cap_and_resets_on_a_prompt_commit() -> None:
    t = timers()
    for _ in range(10):
        t.view_change_started()
    assert t.request_timeout_ms == REQUEST_TIMEOUT_MAX_MS
    t.block_executed(None)  # committed nothing of ours
    t.block_executed(2_001)  # committed only what waited longer than the configured timeout
    assert t.request_timeout_ms == REQUEST_TIMEOUT_MAX_MS
    t.block_executed(2_000)
    assert t.request_timeout_ms == 2_000


def test_the_view_change_timer_is_armed_once_and_doubles_for_the_next_view() -> None:
    t = timers()
    t.arm_view_change(1_000)
    t.arm_view_change(1_500)  # already running: unchanged
    assert t.view_change_deadline_ms == 3_000 and t.view_change_timeout_ms == 4_000
    for view in range(10):
        t.view_change_started()
        t.arm_view_change(view)
    assert t.view_change_timeout_ms == VIEW_CHANGE_TIMEOUT_MAX_MS


def test_a_probe_for_blocks_holds_the_progress_deadline_for_the_same_transaction() -> None:
    t = timers()
    t.arm_progress(0, probing=False)
    assert t.progress_deadline_ms == 2_000 and t.progress_expired(2_000)
    t.start_probe(2_000)
    assert t.progress_deadline_ms == 3_000
    t.arm_progress(0, probing=True)
    assert t.progress_deadline_ms == 3_000, "the probe's deadline still holds"
    t.arm_progress(0, probing=False)
    assert t.progress_deadline_ms == 2_000


def test_the_head_probe_fires_after_the_idle_interval_and_counts_as_hearing() -> None:
    t = timers()
    t.heard(1_000)
    assert not t.head_probe_expired(3_999)
    assert t.head_probe_expired(4_000)
    assert not t.head_probe_expired(4_001)
