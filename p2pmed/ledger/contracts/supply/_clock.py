"""``supply.signals.clock``: the validators set the length of the diversion signals' week.

A production chain never sends it and keeps ``thresholds.WEEK_MS``; a demo or test chain
sets a week of seconds, so that its signals close weeks (and its flags can be raised) while
someone watches. It is a network parameter, not a genesis field (the genesis hash covers
every field, and old genesis files would no longer decode), settled as the validators settle
a company prefix: each validator of the current epoch sends the same ``week_ms``, and the
2f+1-th identical vote sets it. Votes for other lengths do not add up, and f Byzantine
validators alone set nothing.

It is set once, and only before anything was counted. A tally's week is fixed when the
event is counted (``time_ms // week``): were the week to change, the weeks already counted
would mean other stretches of time, the windows and histories would mix them, and a pack
leaving a site would be taken back from a week other than the one its receipt was counted in.
So a vote is refused once the week is set, or once any supply event was counted in a tally
(the first ship, receive, dispense or decommission); what came before (admissions, prefix
grants, commissioning, scans) is kept in ledger time, never in weeks.

Ledger time is block time, which a primary dates within ``block_time_skew_max_ms`` of the
replicas' clocks (10 s by default). On a 7-day week that is nothing; on a week of seconds a
Byzantine primary can close a week or two early, and so make a flag raisable early (a custody
gap, a complete week). A short week is for chains whose signals are a demonstration.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmed.ledger.contracts.supply import thresholds
from p2pmed.ledger.contracts.supply._tally import counted_any
from p2pmed.ledger.contracts.supply._week import WEEK_MS_KEY, voted_week_ms
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader
from p2pmed.ledger.votes import quorum_agrees

__all__ = ["CLOCK_TX_TYPES", "WEEK_MS_MAX", "WEEK_MS_MIN", "SignalClock", "clock_fixed"]

WEEK_MS_MIN = 1_000
WEEK_MS_MAX = thresholds.WEEK_MS


@dataclass(frozen=True)
class SignalClock:
    """A validator's vote for the length of the signals' week, in milliseconds."""

    week_ms: int


def _vote_key(validator: bytes) -> str:
    return f"supply/signals/week-vote/{validator.hex()}"


def clock_fixed(state: StateReader) -> str | None:
    """Why the signals' week can no longer be voted, or None while it can."""
    voted = voted_week_ms(state)
    if voted is not None:
        return f"the signals' week was set to {voted} ms, and it never changes"
    if counted_any(state):
        return (
            f"supply events were already counted in weeks of {thresholds.WEEK_MS} ms: a new length would"
            " re-bucket them, so the week is set only on a chain that has counted nothing"
        )
    return None


def apply_clock(state: StateOverlay, context: TxContext, body: SignalClock) -> None:
    if context.sender not in context.validators:
        raise TxRejected(RejectReason.NOT_AUTHORISED, "only the validators of the current epoch vote the signals' week")
    if not WEEK_MS_MIN <= body.week_ms <= WEEK_MS_MAX:
        raise TxRejected(
            RejectReason.INVALID, f"the signals' week is {WEEK_MS_MIN}..{WEEK_MS_MAX} ms, not {body.week_ms}"
        )
    fixed = clock_fixed(state)
    if fixed is not None:
        same = voted_week_ms(state) == body.week_ms
        raise TxRejected(RejectReason.DUPLICATE if same else RejectReason.INVALID, fixed)
    if quorum_agrees(state, context.validators, context.sender, _vote_key, body.week_ms):
        state.put(WEEK_MS_KEY, body.week_ms)


CLOCK_TX_TYPES = (TxType("supply.signals.clock", SignalClock, apply_clock),)
