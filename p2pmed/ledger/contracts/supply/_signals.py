"""Diversion signals: pure functions of committed state and ledger time that say whether a
site's counts depart from their norm, and with what evidence.

A ``FlagSubject`` names what a signal is about: a rule, a site, a product (a GTIN, or
``*`` for all of the site's products) and a week; a custody gap names its shipment.
``evidence`` recomputes the signal for a subject from the weekly ``Tally`` records, or
raises ``NoSignal`` saying why it does not fire. It is what the ledger runs when a flag is
raised (``supply.flag.raise``), so a flag holds only if its evidence recomputes, and its
cost is bounded whatever the events: at most ``1 + PEERS_MAX`` sites times
``max(HISTORY_WEEKS, PEER_WEEKS) + 1`` tallies, or one shipment and its loose packs'
schedules. ``candidates`` is the scan a validator's node runs off the ledger to find the
subjects worth raising.

The rules (thresholds and their reasons in ``thresholds``):

    rule             subject week               fires when
    balance          last of PEER_WEEKS         receipts still held balance_weeks after: >= balance_min and _percent
    volume-history   a complete week            dispensed departs from the site's own HISTORY_WEEKS before it
    volume-peers     last of PEER_WEEKS         dispensed departs from same-kind peers' totals for the product
    stolen-lost      last of PEER_WEEKS         stolen/lost packs per pack handled: >= floor and >= ratio x peers
    transit-loss     last of PEER_WEEKS         shipped packs declared missing on arrival, likewise, for the shipper
    custody-gap      the shipment's week        a shipment still not received custody_gap_weeks after it left

A week is the chain's signal week (``_week``): 7 days, unless the validators voted a shorter
one on a fresh chain (a demo's or a test's). Every delay above is counted in those weeks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from p2pmed import codec
from p2pmed.ledger.contracts.identity import organisation
from p2pmed.ledger.contracts.supply import thresholds
from p2pmed.ledger.contracts.supply._codes import gtin_problem, short
from p2pmed.ledger.contracts.supply._model import DISPENSER_KINDS, Shipment
from p2pmed.ledger.contracts.supply._store import shipment_key
from p2pmed.ledger.contracts.supply._tally import ALL_PRODUCTS, Tally, peers, schedule_of, tally
from p2pmed.ledger.contracts.supply._week import signal_week_ms, week_of
from p2pmed.ledger.contracts.supply.limits import SHIPMENT_ID_SIZE
from p2pmed.ledger.state import ScanState, StateOverlay, StateReader

__all__ = [
    "RULES",
    "Evidence",
    "FlagSubject",
    "NoSignal",
    "candidates",
    "evidence",
    "mad",
    "median",
]

RULES = ("balance", "volume-history", "volume-peers", "stolen-lost", "transit-loss", "custody-gap")


class NoSignal(Exception):
    """The subject's counts do not depart from their norm (or the subject is malformed)."""


@dataclass(frozen=True)
class FlagSubject:
    rule: str
    site: bytes
    """The organisation id the signal is about (a custody gap's shipper)."""
    product: str
    """A GTIN, or ``*`` for every product of the site."""
    week: int
    """Ledger-time week (``time_ms // signal_week_ms``): see the table in the module docstring."""
    shipment: bytes = b""
    """A custody gap's shipment id; empty for the other rules."""


@dataclass(frozen=True)
class Evidence:
    """Why a subject is flagged: the count, the norm it departed from, and the threshold."""

    observed: int
    """Packs: dispensed, still held, stolen or lost, missing, or in the unreceived shipment."""
    base: int
    """What a rate divides by (packs received, handled or shipped); for volume-peers, the
    product's share of all the site dispensed, in basis points; else 0."""
    norm: int
    """The median of ``samples``: packs (volume-history), a share or a rate in basis points
    (volume-peers, the loss rules); the percent limit (balance); the delivery time (custody gap)."""
    spread: int
    """The MAD used, after its floor (volume rules), else 0."""
    samples: tuple[int, ...]
    """The site's own weeks, or its peers' values, that made the norm."""
    first_week: int
    last_week: int
    schedule: str | None
    """The product's controlled-substance schedule when the stricter thresholds applied."""
    incidents: tuple[bytes, ...]
    """Transactions behind it: stolen, lost or missing reports; a custody gap's shipment."""
    counterpart: bytes
    """A custody gap's destination; else empty."""
    summary: str


def median(values: tuple[int, ...]) -> int:
    """The median, rounded down for an even count; 0 for none."""
    if not values:
        return 0
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) // 2


def mad(values: tuple[int, ...]) -> int:
    """The median absolute deviation from the median."""
    centre = median(values)
    return median(tuple(abs(value - centre) for value in values))


def _rules_for(state: StateReader, product: str) -> tuple[thresholds.Thresholds, str | None]:
    schedule = None if product == ALL_PRODUCTS else schedule_of(state, product)
    return (thresholds.ORDINARY if schedule is None else thresholds.CONTROLLED), schedule


def _departs(value: int, samples: tuple[int, ...], rules: thresholds.Thresholds) -> tuple[int, int, bool]:
    """The median, the floored MAD, and whether ``value`` departs from them (module docstring of ``thresholds``)."""
    centre = median(samples)
    floor = -(-centre * thresholds.MAD_FLOOR_PERCENT // 100)
    spread = max(mad(samples), floor, math.isqrt(centre) + 1)
    high = value * 100 >= rules.volume_ratio_percent * centre
    return centre, spread, high and 6745 * (value - centre) >= rules.z_x100 * 100 * spread


def _window(state: StateReader, site: bytes, product: str, last_week: int, weeks: int) -> Tally:
    """The site's tallies of ``weeks`` weeks ending with ``last_week``, added up."""
    totals = [0] * 7
    incidents: list[bytes] = []
    for week in range(max(last_week - weeks + 1, 0), last_week + 1):
        found = tally(state, site, product, week)
        counts = (
            found.received,
            found.dispensed,
            found.shipped,
            found.decommissioned,
            found.stolen_lost,
            found.missing,
            found.still_held,
        )
        totals = [total + count for total, count in zip(totals, counts, strict=True)]
        incidents.extend(tx for tx in found.incidents if tx not in incidents)
    received, dispensed, shipped, decommissioned, stolen_lost, missing, still_held = totals
    listed = tuple(incidents[: thresholds.EVIDENCE_INCIDENTS_MAX])
    return Tally(received, dispensed, shipped, decommissioned, stolen_lost, missing, still_held, listed)


def _site_kind(state: StateReader, site: bytes) -> str:
    found = organisation(state, site)
    if found is None:
        raise NoSignal(f"no organisation has id {short(site)}")
    return found.kind


def _peer_values(
    state: StateReader, subject: FlagSubject, kind: str, value: Callable[[Tally], int | None]
) -> tuple[int, ...]:
    """``value`` of each same-kind peer's window (not the site's), where it is not None."""
    found = []
    for peer in peers(state, subject.product, kind):
        if peer != subject.site:
            measured = value(_window(state, peer, subject.product, subject.week, thresholds.PEER_WEEKS))
            if measured is not None:
                found.append(measured)
    return tuple(found)


def _first_week(subject: FlagSubject, weeks: int) -> int:
    return max(subject.week - weeks + 1, 0)


# -- the rules ------------------------------------------------------------------------------


def _balance(state: StateReader, subject: FlagSubject, now_week: int) -> Evidence:
    """Packs received in the PEER_WEEKS weeks ending with the subject's week and still held
    ``balance_weeks`` after it: a slow siphon leaves a pack or two a week, which add up."""
    rules, schedule = _rules_for(state, subject.product)
    if subject.week + rules.balance_weeks >= now_week:
        raise NoSignal(f"week {subject.week}'s receipts are not {rules.balance_weeks} full weeks old yet")
    window = _window(state, subject.site, subject.product, subject.week, thresholds.PEER_WEEKS)
    held, received = window.still_held, window.received
    first = _first_week(subject, thresholds.PEER_WEEKS)
    if held < rules.balance_min or held * 100 < rules.balance_percent * received:
        raise NoSignal(
            f"{held} of {received} packs received in weeks {first}..{subject.week} still held: under"
            f" {rules.balance_min} packs or {rules.balance_percent} %"
        )
    summary = (
        f"{held} of {received} packs received in weeks {first}..{subject.week} were never dispensed, shipped or"
        f" decommissioned in the {rules.balance_weeks} weeks since"
    )
    return Evidence(held, received, rules.balance_percent, 0, (), first, subject.week, schedule, (), b"", summary)


def _volume_history(state: StateReader, subject: FlagSubject, now_week: int) -> Evidence:
    rules, schedule = _rules_for(state, subject.product)
    value = tally(state, subject.site, subject.product, subject.week).dispensed
    weeks = range(max(subject.week - thresholds.HISTORY_WEEKS, 0), subject.week)
    counts = [tally(state, subject.site, subject.product, week).dispensed for week in weeks]
    started = next((index for index, count in enumerate(counts) if count), len(counts))
    history = tuple(counts[started:])  # the weeks before the site first dispensed it are no norm
    first = weeks.start + started
    if len(history) < thresholds.HISTORY_WEEKS_ACTIVE_MIN:
        raise NoSignal(f"only {len(history)} weeks of history before week {subject.week}: no norm of its own yet")
    centre, spread, fires = _departs(value, history, rules)
    if value < rules.volume_min or not fires:
        raise NoSignal(f"{value} packs dispensed in week {subject.week}: in line with the median {centre}")
    summary = (
        f"{value} packs dispensed in week {subject.week}, against a median of {centre} (MAD {spread}) in the"
        f" {len(history)} weeks before"
    )
    return Evidence(value, 0, centre, spread, history, first, subject.week, schedule, (), b"", summary)


def _share_bp(state: StateReader, site: bytes, product: str, last_week: int) -> tuple[int, int]:
    """Packs of ``product`` the site dispensed in PEER_WEEKS, and their share of all it dispensed (bp)."""
    value = _window(state, site, product, last_week, thresholds.PEER_WEEKS).dispensed
    total = _window(state, site, ALL_PRODUCTS, last_week, thresholds.PEER_WEEKS).dispensed
    return value, value * 10_000 // max(total, 1)


def _volume_peers(state: StateReader, subject: FlagSubject, now_week: int) -> Evidence:
    """Peers differ in size by a factor of ten, so they are compared on the product's share of
    what each dispenses (a pill mill's opioid share, not its volume), in basis points."""
    rules, schedule = _rules_for(state, subject.product)
    kind = _site_kind(state, subject.site)
    value, share = _share_bp(state, subject.site, subject.product, subject.week)
    samples = tuple(
        peer_share
        for peer in peers(state, subject.product, kind)
        if peer != subject.site
        for dispensed, peer_share in (_share_bp(state, peer, subject.product, subject.week),)
        if dispensed
    )
    if len(samples) < thresholds.PEERS_MIN:
        raise NoSignal(f"only {len(samples)} {kind} peers dispensed {subject.product}: no peer norm")
    centre, spread, fires = _departs(share, samples, rules)
    if value < rules.volume_min or not fires:
        raise NoSignal(
            f"{value} packs dispensed ({share} bp of the site's): in line with the peers' median {centre} bp"
        )
    first = _first_week(subject, thresholds.PEER_WEEKS)
    summary = (
        f"{value} packs dispensed in weeks {first}..{subject.week}, {share} bp of all the site dispensed, against a"
        f" median share of {centre} bp (MAD {spread}) among {len(samples)} {kind} peers"
    )
    return Evidence(value, share, centre, spread, samples, first, subject.week, schedule, (), b"", summary)


def _handled(window: Tally) -> int:
    return max(window.received, window.dispensed + window.shipped + window.decommissioned)


def _loss(
    state: StateReader, subject: FlagSubject, count: Callable[[Tally], int], base: Callable[[Tally], int], what: str
) -> Evidence:
    rules, schedule = _rules_for(state, subject.product)
    kind = _site_kind(state, subject.site)
    window = _window(state, subject.site, subject.product, subject.week, thresholds.PEER_WEEKS)
    lost, of = count(window), base(window)
    rate_bp = lost * 10_000 // max(of, 1)
    samples = _peer_values(
        state, subject, kind, lambda peer: count(peer) * 10_000 // base(peer) if base(peer) else None
    )
    centre = median(samples) if len(samples) >= thresholds.PEERS_MIN else 0
    if lost < rules.loss_min or rate_bp < max(rules.loss_rate_floor_bp, rules.loss_ratio * centre):
        raise NoSignal(f"{lost} packs {what} of {of} ({rate_bp} bp): under the thresholds (peers' median {centre} bp)")
    first = _first_week(subject, thresholds.PEER_WEEKS)
    summary = (
        f"{lost} of {of} packs {what} in weeks {first}..{subject.week} ({rate_bp} bp), against a median of"
        f" {centre} bp among {len(samples)} {kind} peers"
    )
    return Evidence(lost, of, centre, 0, samples, first, subject.week, schedule, window.incidents, b"", summary)


def _stolen_lost(state: StateReader, subject: FlagSubject, now_week: int) -> Evidence:
    return _loss(state, subject, lambda window: window.stolen_lost, _handled, "decommissioned as stolen or lost")


def _transit_loss(state: StateReader, subject: FlagSubject, now_week: int) -> Evidence:
    return _loss(state, subject, lambda window: window.missing, lambda window: window.shipped, "shipped went missing")


def _elapsed(ms: int) -> str:
    """A delay in the largest whole unit it reaches: a 7-day week's delays read in days, a
    demo chain's seconds-long ones in seconds."""
    for unit_ms, unit in ((86_400_000, "days"), (3_600_000, "h"), (1_000, "s")):
        if ms >= unit_ms:
            return f"{ms // unit_ms} {unit}"
    return f"{ms} ms"


def _custody_gap(state: StateReader, subject: FlagSubject, now_ms: int) -> Evidence:
    if len(subject.shipment) != SHIPMENT_ID_SIZE:
        raise NoSignal(f"a custody gap names a shipment by its {SHIPMENT_ID_SIZE}-byte id")
    sent = StateOverlay(state).get(Shipment, shipment_key(subject.shipment))
    if sent is None:
        raise NoSignal(f"no shipment has id {subject.shipment.hex()}")
    sent_week = week_of(state, sent.time_ms)
    if (sent.source, ALL_PRODUCTS, sent_week) != (subject.site, subject.product, subject.week):
        raise NoSignal(f"shipment {sent.id.hex()} left {short(sent.source)} in week {sent_week}, for *")
    if sent.receipt is not None:
        raise NoSignal(f"shipment {sent.id.hex()} was received at height {sent.receipt.height}")
    schedules = sorted({schedule for ref in sent.packs if (schedule := schedule_of(state, ref.gtin)) is not None})
    rules = thresholds.CONTROLLED if schedules else thresholds.ORDINARY
    waited_ms, gap_ms = now_ms - sent.time_ms, rules.custody_gap_weeks * signal_week_ms(state)
    if waited_ms < gap_ms:
        raise NoSignal(f"shipment {sent.id.hex()} left {_elapsed(waited_ms)} ago: still within its delivery time")
    summary = (
        f"shipment {sent.id.hex()} of {len(sent.packs)} packs and {len(sent.containers)} containers from"
        f" {short(sent.source)} to {short(sent.destination)} not received {_elapsed(waited_ms)} after it left"
    )
    return Evidence(
        len(sent.packs),
        0,
        gap_ms,
        0,
        (),
        subject.week,
        subject.week,
        schedules[0] if schedules else None,
        (sent.id,),
        sent.destination,
        summary,
    )


_WEEKLY: dict[str, Callable[[StateReader, FlagSubject, int], Evidence]] = {
    "balance": _balance,
    "volume-history": _volume_history,
    "volume-peers": _volume_peers,
    "stolen-lost": _stolen_lost,
    "transit-loss": _transit_loss,
}


def _check_subject(subject: FlagSubject, now_week: int) -> None:
    if subject.rule not in RULES:
        raise NoSignal(f"unknown rule {subject.rule[:40]!r}; known: {', '.join(RULES)}")
    if subject.product != ALL_PRODUCTS and (problem := gtin_problem(subject.product)) is not None:
        raise NoSignal(f"the product must be a GTIN or {ALL_PRODUCTS!r}: {problem}")
    if not 0 <= subject.week < now_week:
        raise NoSignal(f"week {subject.week} is not a complete week: the current week is {now_week}")
    if (subject.rule == "custody-gap") != bool(subject.shipment):
        raise NoSignal("a custody gap, and only a custody gap, names a shipment")


def evidence(state: StateReader, subject: FlagSubject, now_ms: int) -> Evidence:
    """The evidence for ``subject`` at ledger time ``now_ms``, or ``NoSignal`` saying why there is none."""
    now_week = week_of(state, now_ms)
    _check_subject(subject, now_week)
    if subject.rule == "custody-gap":
        return _custody_gap(state, subject, now_ms)
    if subject.rule.startswith("volume-") and (kind := _site_kind(state, subject.site)) not in DISPENSER_KINDS:
        raise NoSignal(f"volume rules watch dispensers; {short(subject.site)} is a {kind}")
    return _WEEKLY[subject.rule](state, subject, now_week)


# -- the scan a validator's node runs ------------------------------------------------------------


def _tallies(state: ScanState, first_week: int, last_week: int) -> Iterator[tuple[bytes, str, int, Tally]]:
    for key, data in state.state_items("supply/tally/"):
        site_hex, product, week_text = key.removeprefix("supply/tally/").split("/")
        week = int(week_text)
        if first_week <= week <= last_week:
            yield bytes.fromhex(site_hex), product, week, codec.decode(Tally, data, 1 << 16)


def _weekly_subjects(
    state: ScanState, site: bytes, product: str, week: int, found: Tally, due: range
) -> Iterator[FlagSubject]:
    """The subjects of one tally that fall due in the weeks ``due``: a week's counts the week
    after it, a week's receipts when ``balance_weeks`` have passed."""
    rules, schedule = _rules_for(state, product)
    if product != ALL_PRODUCTS and found.still_held and week + rules.balance_weeks + 1 in due:
        yield FlagSubject("balance", site, product, week)
    if week + 1 not in due:
        return
    if product != ALL_PRODUCTS and found.dispensed:
        yield FlagSubject("volume-history", site, product, week)
        yield FlagSubject("volume-peers", site, product, week)
    if product == ALL_PRODUCTS or schedule is not None:
        if found.stolen_lost:
            yield FlagSubject("stolen-lost", site, product, week)
        if found.missing:
            yield FlagSubject("transit-loss", site, product, week)


def candidates(state: ScanState, now_ms: int, weeks_back: int = 1) -> list[tuple[FlagSubject, Evidence]]:
    """The subjects that fell due in the last ``weeks_back`` weeks (the module docstring's table)
    whose evidence holds at ``now_ms``, and every shipment in a custody gap. Off the ledger:
    it walks every tally key and every shipment; a node runs it once a week."""
    week_ms = signal_week_ms(state)
    now_week = now_ms // week_ms
    due = range(now_week - weeks_back + 1, now_week + 1)
    oldest = due.start - thresholds.ORDINARY.balance_weeks - 1
    subjects = [
        subject
        for site, product, week, found in _tallies(state, oldest, now_week - 1)
        for subject in _weekly_subjects(state, site, product, week, found, due)
    ]
    for _, data in state.state_items("supply/shipment/"):
        sent = codec.decode(Shipment, data, 1 << 20)
        if sent.receipt is None:
            subjects.append(FlagSubject("custody-gap", sent.source, ALL_PRODUCTS, sent.time_ms // week_ms, sent.id))
    found: list[tuple[FlagSubject, Evidence]] = []
    for subject in subjects:
        try:
            found.append((subject, evidence(state, subject, now_ms)))
        except NoSignal:
            continue
    return found
