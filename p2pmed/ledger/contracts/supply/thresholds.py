"""The diversion signals' thresholds, and why each is where it is.

Every signal compares a count with a norm: the site's own recent weeks, or its peers
(organisations of the same kind handling the same product, or any product for ``*``).
Norms are robust statistics, so that one odd site or week does not move them: the
median, and the median absolute deviation (MAD). A value departs from its norm when all
of these hold:

- it is at least ``*_MIN`` (a handful of packs is never a pattern);
- it is at least ``volume_ratio_percent`` of the median (a multiplicative test: honest
  weeks and shares vary by a factor of two, so a fixed distance would flag the big ones);
- its modified z-score, 0.6745 (x - median) / MAD (Iglewicz and Hoaglin, 1993), is at
  least ``z_x100 / 100``; they recommend 3.5 for outliers. The MAD is taken as at least
  ``MAD_FLOOR_PERCENT`` of the median, and at least isqrt(median) + 1: dispenses are
  counts, roughly Poisson, whose own noise is about the square root of their mean, so a
  short history that happens to agree closely (MAD near 0) does not make every small
  departure an outlier.

Rates are integers in basis points (1/10,000) and every comparison is integer arithmetic:
the same answer on every node, with no floating point on the ledger.

A controlled substance (a GTIN its maker declared scheduled, ``supply.product.schedule``)
is held to the ``CONTROLLED_*`` numbers instead: lower minimums, lower ratios and
z-scores, shorter windows, because a few diverted opioid packs matter more than a few
antibiotics and DEA-style monitoring watches them more closely. The generator in
``p2pmed.bench.diversion`` plants patterns and honest noise and measures what these numbers
catch and what they flag wrongly (benchmarks/diversion.py).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CONTROLLED",
    "EVIDENCE_INCIDENTS_MAX",
    "HISTORY_WEEKS",
    "HISTORY_WEEKS_ACTIVE_MIN",
    "MAD_FLOOR_PERCENT",
    "ORDINARY",
    "PEERS_MAX",
    "PEERS_MIN",
    "PEER_WEEKS",
    "WEEK_MS",
    "Thresholds",
]

WEEK_MS = 7 * 24 * 3600 * 1000
"""Counts are kept per site, product and ledger-time week (``time_ms // WEEK_MS``). A demo or
test chain's validators may vote a shorter week before anything is counted (``_week``); every
number of weeks below is then that many of its weeks."""
HISTORY_WEEKS = 8
"""A week's dispenses are compared with the site's eight weeks before it: two months is
long enough for a median to mean something, short enough to follow a real trend."""
HISTORY_WEEKS_ACTIVE_MIN = 4
"""A site with fewer active weeks in its history has no norm of its own yet (a new site)."""
PEER_WEEKS = 4
"""Peers are compared on four weeks' totals: a week's noise averages out."""
PEERS_MIN = 4
"""With fewer peers than this a median says little: no peer signal."""
PEERS_MAX = 64
"""Peers listed per product and kind, in the order they first handled it; later ones are
compared against these but not listed, so that checking a flag reads a bounded state."""
MAD_FLOOR_PERCENT = 20
EVIDENCE_INCIDENTS_MAX = 8
"""Transactions named as evidence of stolen, lost or missing packs, per site and week."""


@dataclass(frozen=True)
class Thresholds:
    volume_min: int
    """Packs dispensed (in a week against the site's history, in PEER_WEEKS against peers)."""
    volume_ratio_percent: int
    """Of the median."""
    z_x100: int
    """The modified z-score, in hundredths."""
    balance_weeks: int
    """How long after a week's receipts the packs still held from it count as unaccounted for:
    an honest site turns its stock over well within it (most keep two to four weeks)."""
    balance_min: int
    balance_percent: int
    """Of the week's receipts still held after ``balance_weeks``."""
    loss_min: int
    """Packs stolen or lost at a site, or shipped by it and missing on arrival, in PEER_WEEKS."""
    loss_rate_floor_bp: int
    """The loss rate (of packs received, or shipped) below which nothing is flagged,
    whatever the peers do: honest losses run near 0.1 %."""
    loss_ratio: int
    """Times the peers' median loss rate."""
    custody_gap_weeks: int
    """A shipment not received this many weeks after it left is a custody gap: deliveries take days."""


ORDINARY = Thresholds(
    volume_min=15,
    volume_ratio_percent=300,
    z_x100=350,
    balance_weeks=8,
    balance_min=5,
    balance_percent=20,
    loss_min=5,
    loss_rate_floor_bp=100,
    loss_ratio=3,
    custody_gap_weeks=2,
)
CONTROLLED = Thresholds(
    volume_min=10,
    volume_ratio_percent=250,
    z_x100=300,
    balance_weeks=4,
    balance_min=2,
    balance_percent=5,
    loss_min=3,
    loss_rate_floor_bp=50,
    loss_ratio=2,
    custody_gap_weeks=1,
)
