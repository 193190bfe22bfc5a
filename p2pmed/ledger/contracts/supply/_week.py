"""The length of the diversion signals' week on this chain.

Production chains keep ``thresholds.WEEK_MS`` (7 days); a demo or test chain may have its
validators vote a shorter one before anything is counted (``_clock``), so that its signals
close weeks in seconds. Every week the signals use (the
tallies' buckets, the windows, the balance and custody-gap delays) is read through
``signal_week_ms``, so the ledger recomputing a flag and a validator's scan count the same weeks.
"""

from __future__ import annotations

from p2pmed.ledger.contracts.supply import thresholds
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = ["WEEK_MS_KEY", "signal_week_ms", "voted_week_ms", "week_of"]

WEEK_MS_KEY = "supply/signals/week-ms"


def voted_week_ms(state: StateReader) -> int | None:
    """The week the validators voted, if they did."""
    return StateOverlay(state).get(int, WEEK_MS_KEY)


def signal_week_ms(state: StateReader) -> int:
    return voted_week_ms(state) or thresholds.WEEK_MS


def week_of(state: StateReader, time_ms: int) -> int:
    """The signals' week ledger time ``time_ms`` falls in."""
    return time_ms // signal_week_ms(state)
