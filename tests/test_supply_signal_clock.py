"""The signals' week as a chain parameter: 2f+1 identical validator votes set it, once, on a
chain that has counted nothing; flags on a short week are raised when its weeks close, and a
chain that never voted keeps the 7-day week."""

from __future__ import annotations

import pytest
from tests.ledger_harness import LedgerHarness, key

from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.membership import EPOCH_DELAY_BLOCKS, ValidatorChange
from p2pmed.ledger.contracts.supply import FlagRaise, FlagSubject, PackRef, SignalClock
from p2pmed.ledger.errors import RejectReason

MAKER, DISTRIBUTOR, PHARMACY, REGULATOR = key("maker"), key("distributor"), key("pharmacy"), key("regulator")
GTIN = "10614141073464"
WEEK = 60_000
CLOCK = "supply.signals.clock"


@pytest.fixture
def ledger() -> LedgerHarness:
    ledger = LedgerHarness()
    ledger.admit_organisation(MAKER, "manufacturer")
    ledger.grant_prefix(MAKER, "0614141")
    for organisation, kind in ((DISTRIBUTOR, "distributor"), (PHARMACY, "pharmacy"), (REGULATOR, "regulator")):
        ledger.admit_organisation(organisation, kind)
    return ledger


def set_week(ledger: LedgerHarness, week_ms: int = WEEK) -> None:
    for validator in ledger.validators[:3]:
        ledger.ok(validator, CLOCK, SignalClock(week_ms))


def make(ledger: LedgerHarness, count: int, prefix: str = "S") -> tuple[PackRef, ...]:
    serials = tuple(f"{prefix}{index}" for index in range(count))
    ledger.ok(MAKER, "supply.commission", supply.SupplyCommission(GTIN, "L1", "2031-12-31", serials))
    return tuple(PackRef(GTIN, serial) for serial in serials)


def ship(ledger: LedgerHarness, source: SigningKey, destination: SigningKey, packs: tuple[PackRef, ...]) -> bytes:
    return ledger.run(source, "supply.ship", supply.SupplyShip(destination.public_key, packs)).tx_id


def supply_state(ledger: LedgerHarness) -> dict[str, bytes]:
    return {k: v for k, v in ledger.state.data.items() if k.startswith("supply/")}


def raise_flag(ledger: LedgerHarness, subject: FlagSubject) -> str:
    result = ledger.run(ledger.validators[1], "supply.flag.raise", FlagRaise(subject))
    return "ok" if result.ok else f"{result.reason}: {result.detail}"


# -- the vote ------------------------------------------------------------------------------------------


def test_the_week_is_set_at_the_2f_plus_1_th_identical_vote_and_not_before(ledger: LedgerHarness) -> None:
    first, second, third, _ = ledger.validators
    ledger.ok(first, CLOCK, SignalClock(WEEK))
    ledger.ok(second, CLOCK, SignalClock(2 * WEEK))  # votes for another length do not add up
    ledger.ok(third, CLOCK, SignalClock(WEEK))
    assert supply.signal_week_ms(ledger.state) == supply.thresholds.WEEK_MS
    assert supply.clock_fixed(ledger.state) is None
    ledger.ok(second, CLOCK, SignalClock(WEEK))  # a validator changes its vote
    assert supply.signal_week_ms(ledger.state) == WEEK
    assert not [k for k in ledger.state.data if k.startswith("supply/signals/week-vote/")], "settled votes are cleared"


def test_a_week_once_set_never_changes(ledger: LedgerHarness) -> None:
    set_week(ledger)
    detail = ledger.refused(ledger.validators[3], CLOCK, SignalClock(2 * WEEK), RejectReason.INVALID)
    assert detail == f"the signals' week was set to {WEEK} ms, and it never changes"
    ledger.refused(ledger.validators[0], CLOCK, SignalClock(WEEK), RejectReason.DUPLICATE)
    assert supply.signal_week_ms(ledger.state) == WEEK


def test_a_vote_after_the_first_counted_supply_event_is_refused_and_changes_nothing(ledger: LedgerHarness) -> None:
    packs = make(ledger, 2)  # commissioning is not counted in weeks: the week may still be voted
    ledger.ok(ledger.validators[0], CLOCK, SignalClock(WEEK))
    ship(ledger, MAKER, DISTRIBUTOR, packs)  # the first tally
    before = supply_state(ledger)
    for validator in ledger.validators[1:3]:
        detail = ledger.refused(validator, CLOCK, SignalClock(WEEK), RejectReason.INVALID)
        assert detail.startswith(f"supply events were already counted in weeks of {supply.thresholds.WEEK_MS} ms")
    assert supply_state(ledger) == before  # the pending vote stays pending, the week unset
    assert supply.signal_week_ms(ledger.state) == supply.thresholds.WEEK_MS


@pytest.mark.parametrize("week_ms", [-1, 0, supply.WEEK_MS_MIN - 1, supply.WEEK_MS_MAX + 1])
def test_a_week_out_of_bounds_is_refused_and_changes_nothing(ledger: LedgerHarness, week_ms: int) -> None:
    before = supply_state(ledger)
    detail = ledger.refused(ledger.validators[0], CLOCK, SignalClock(week_ms), RejectReason.INVALID)
    assert detail == f"the signals' week is 1000..604800000 ms, not {week_ms}"
    assert supply_state(ledger) == before


def test_only_the_validators_of_the_current_epoch_vote(ledger: LedgerHarness) -> None:
    before = supply_state(ledger)
    for outsider in (REGULATOR, PHARMACY, key("stranger")):
        detail = ledger.refused(outsider, CLOCK, SignalClock(WEEK), RejectReason.NOT_AUTHORISED)
        assert detail == "only the validators of the current epoch vote the signals' week"
    removed = ledger.validators[3]
    for validator in ledger.validators[:3]:
        ledger.ok(validator, "validator.change", ValidatorChange(remove=(removed.public_key,)))
    ledger.skip_to(ledger.height + EPOCH_DELAY_BLOCKS)
    ledger.refused(removed, CLOCK, SignalClock(WEEK), RejectReason.NOT_AUTHORISED)
    assert supply_state(ledger) == before
    ledger.ok(ledger.validators[0], CLOCK, SignalClock(WEEK))


# -- flags on a short week -------------------------------------------------------------------------------


def test_on_a_short_week_a_transit_loss_flag_holds_once_its_week_closed_and_not_before(ledger: LedgerHarness) -> None:
    set_week(ledger)
    packs = make(ledger, 20)
    ledger.time_ms = (ledger.time_ms // WEEK + 1) * WEEK  # the events below fall in one week
    first = ship(ledger, MAKER, DISTRIBUTOR, packs)
    ledger.ok(DISTRIBUTOR, "supply.receive", supply.SupplyReceive(first, packs, ()))
    second = ship(ledger, DISTRIBUTOR, PHARMACY, packs)
    ledger.ok(PHARMACY, "supply.receive", supply.SupplyReceive(second, packs[6:], packs[:6]))
    week = supply.week_of(ledger.state, ledger.time_ms)
    assert week == ledger.time_ms // WEEK
    subject = FlagSubject("transit-loss", DISTRIBUTOR.public_key, "*", week)
    assert f"week {week} is not a complete week" in raise_flag(ledger, subject)
    ledger.time_ms = (week + 1) * WEEK  # a minute on, not a week: the next block is in the next week
    (found,) = [s for s, _ in supply.candidates(ledger.state, ledger.time_ms + 1_000) if s.rule == "transit-loss"]
    assert found == subject, "the scan and the ledger count the same weeks"
    assert raise_flag(ledger, subject) == "ok"
    (flag,) = supply.flags(ledger.state)
    assert (flag.evidence.observed, flag.evidence.base, flag.evidence.last_week) == (6, 20, week)


def test_on_a_short_week_a_custody_gap_is_two_of_its_weeks(ledger: LedgerHarness) -> None:
    set_week(ledger)
    shipment = ship(ledger, MAKER, DISTRIBUTOR, make(ledger, 3))
    shipped_ms = ledger.time_ms
    subject = FlagSubject("custody-gap", MAKER.public_key, "*", shipped_ms // WEEK, shipment)
    ledger.time_ms = shipped_ms + 2 * WEEK - 2_000  # the block is a second on: still within two weeks
    assert "119 s ago: still within its delivery time" in raise_flag(ledger, subject)
    ledger.time_ms = shipped_ms + 2 * WEEK
    assert raise_flag(ledger, subject) == "ok"
    (flag,) = supply.flags(ledger.state)
    assert flag.evidence.norm == 2 * WEEK and "not received 121 s after it left" in flag.evidence.summary


def test_a_chain_that_never_voted_keeps_the_seven_day_week(ledger: LedgerHarness) -> None:
    assert supply.signal_week_ms(ledger.state) == supply.thresholds.WEEK_MS == 7 * 24 * 3600 * 1000
    shipment = ship(ledger, MAKER, DISTRIBUTOR, make(ledger, 3))
    shipped_ms = ledger.time_ms
    subject = FlagSubject("custody-gap", MAKER.public_key, "*", shipped_ms // supply.thresholds.WEEK_MS, shipment)
    ledger.time_ms = shipped_ms + 14 * 24 * 3600 * 1000 - 2_000
    assert "13 days ago: still within its delivery time" in raise_flag(ledger, subject)
    assert raise_flag(ledger, subject) == "ok"
    assert supply.flags(ledger.state)[0].evidence.norm == 14 * 24 * 3600 * 1000
