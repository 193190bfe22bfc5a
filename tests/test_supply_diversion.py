"""Diversion signals and flags: each rule fires on its pattern and not on honest counts; a flag
holds only if its evidence recomputes; only overseers who are not parties review and close it."""

from __future__ import annotations

import pytest
from tests.ledger_harness import LedgerHarness, key

from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.supply import FlagClose, FlagRaise, FlagReview, FlagSubject, PackRef, ProductSchedule
from p2pmed.ledger.errors import RejectReason
from p2pmed.sim.supply_chain import Outcome, WorldShape, run

MAKER, DISTRIBUTOR, REGULATOR = key("maker"), key("distributor"), key("regulator")
PHARMACIES = [key(f"pharmacy-{index}") for index in range(6)]
GTIN = "10614141073464"
DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def ledger() -> LedgerHarness:
    ledger = LedgerHarness()
    ledger.admit_organisation(MAKER, "manufacturer")
    ledger.grant_prefix(MAKER, "0614141")
    ledger.grant_prefix(MAKER, "9501101")
    ledger.admit_organisation(DISTRIBUTOR, "distributor")
    ledger.admit_organisation(REGULATOR, "regulator")
    for pharmacy in PHARMACIES:
        ledger.admit_organisation(pharmacy, "pharmacy")
    return ledger


class Supplier:
    """Commissions fresh serials and delivers them through the distributor."""

    def __init__(self, ledger: LedgerHarness) -> None:
        self.ledger, self.serial = ledger, 0

    def make(self, count: int) -> tuple[PackRef, ...]:
        serials = tuple(f"S{self.serial + index}" for index in range(count))
        self.serial += count
        self.ledger.ok(MAKER, "supply.commission", supply.SupplyCommission(GTIN, "L1", "2031-12-31", serials))
        return tuple(PackRef(GTIN, serial) for serial in serials)

    def ship(self, source: SigningKey, destination: bytes, packs: tuple[PackRef, ...]) -> bytes:
        return self.ledger.run(source, "supply.ship", supply.SupplyShip(destination, packs)).tx_id

    def deliver(self, pharmacy: SigningKey, count: int, missing: int = 0) -> tuple[PackRef, ...]:
        packs = self.make(count)
        first = self.ship(MAKER, DISTRIBUTOR.public_key, packs)
        self.ledger.ok(DISTRIBUTOR, "supply.receive", supply.SupplyReceive(first, packs, ()))
        second = self.ship(DISTRIBUTOR, pharmacy.public_key, packs)
        arrived, lost = packs[missing:], packs[:missing]
        self.ledger.ok(pharmacy, "supply.receive", supply.SupplyReceive(second, arrived, lost))
        return arrived


def week(ledger: LedgerHarness) -> int:
    return supply.week_of(ledger.state, ledger.time_ms)


def next_week(ledger: LedgerHarness, weeks: int = 1) -> None:
    ledger.time_ms = (week(ledger) + weeks) * supply.signal_week_ms(ledger.state)


def raise_flag(ledger: LedgerHarness, subject: FlagSubject, signer: SigningKey | None = None) -> str:
    result = ledger.run(signer or ledger.validators[1], "supply.flag.raise", FlagRaise(subject))
    return "ok" if result.ok else f"{result.reason}: {result.detail}"


# -- the rules -----------------------------------------------------------------------------------


def test_a_shipment_never_received_is_a_custody_gap_after_its_delivery_time(ledger: LedgerHarness) -> None:
    supplier = Supplier(ledger)
    shipment = supplier.ship(MAKER, DISTRIBUTOR.public_key, supplier.make(3))
    subject = FlagSubject("custody-gap", MAKER.public_key, "*", week(ledger), shipment)
    ledger.time_ms += 13 * DAY_MS
    assert "still within its delivery time" in raise_flag(ledger, subject)
    ledger.time_ms += 2 * DAY_MS
    assert raise_flag(ledger, subject) == "ok"
    (flag,) = supply.flags(ledger.state)
    assert flag.status == "open" and flag.evidence.incidents == (shipment,)
    assert flag.evidence.counterpart == DISTRIBUTOR.public_key and "not received 15 days" in flag.evidence.summary


def test_a_controlled_product_has_a_shorter_custody_gap(ledger: LedgerHarness) -> None:
    supplier = Supplier(ledger)
    packs = supplier.make(3)
    ledger.ok(MAKER, "supply.product.schedule", ProductSchedule(GTIN, "CII"))
    shipment = supplier.ship(MAKER, DISTRIBUTOR.public_key, packs)
    subject = FlagSubject("custody-gap", MAKER.public_key, "*", week(ledger), shipment)
    ledger.time_ms += 8 * DAY_MS
    assert raise_flag(ledger, subject) == "ok"
    assert supply.flags(ledger.state)[0].evidence.schedule == "CII"


def test_packs_received_and_never_accounted_for_are_flagged(ledger: LedgerHarness) -> None:
    supplier = Supplier(ledger)
    honest, diverter = PHARMACIES[0], PHARMACIES[1]
    for pharmacy in (honest, diverter):
        packs = supplier.deliver(pharmacy, 30)
        kept = packs[:10] if pharmacy is diverter else ()
        ledger.ok(pharmacy, "supply.dispense", supply.SupplyDispense(packs[len(kept) :]))
    received_week = week(ledger)
    next_week(ledger, supply.thresholds.ORDINARY.balance_weeks + 1)
    assert raise_flag(ledger, FlagSubject("balance", diverter.public_key, GTIN, received_week)) == "ok"
    found = raise_flag(ledger, FlagSubject("balance", honest.public_key, GTIN, received_week))
    assert found.startswith("invalid: the evidence does not recompute: 0 of 30 packs")
    (flag,) = supply.flags(ledger.state)
    assert (flag.evidence.observed, flag.evidence.base) == (10, 30)


def test_a_week_too_recent_for_the_balance_is_refused(ledger: LedgerHarness) -> None:
    Supplier(ledger).deliver(PHARMACIES[0], 30)
    received_week = week(ledger)
    next_week(ledger, supply.thresholds.ORDINARY.balance_weeks)
    assert "not 8 full weeks old yet" in raise_flag(
        ledger, FlagSubject("balance", PHARMACIES[0].public_key, GTIN, received_week)
    )


def dispense_weeks(ledger: LedgerHarness, supplier: Supplier, pharmacy: SigningKey, counts: list[int]) -> None:
    for count in counts:
        ledger.ok(pharmacy, "supply.dispense", supply.SupplyDispense(supplier.deliver(pharmacy, count)))
        next_week(ledger)


def test_a_week_far_above_the_sites_own_history_is_flagged(ledger: LedgerHarness) -> None:
    supplier = Supplier(ledger)
    pharmacy = PHARMACIES[0]
    dispense_weeks(ledger, supplier, pharmacy, [10, 12, 9, 11, 10, 45])
    surge_week = week(ledger) - 1
    assert raise_flag(ledger, FlagSubject("volume-history", pharmacy.public_key, GTIN, surge_week)) == "ok"
    (flag,) = supply.flags(ledger.state)
    assert flag.evidence.samples == (10, 12, 9, 11, 10) and flag.evidence.norm == 10


def test_an_honest_busy_week_is_not_flagged(ledger: LedgerHarness) -> None:
    supplier = Supplier(ledger)
    dispense_weeks(ledger, supplier, PHARMACIES[0], [10, 12, 9, 11, 10, 18])
    subject = FlagSubject("volume-history", PHARMACIES[0].public_key, GTIN, week(ledger) - 1)
    assert "in line with the median 10" in raise_flag(ledger, subject)


def test_a_pharmacy_whose_product_share_is_far_above_its_peers_is_flagged(ledger: LedgerHarness) -> None:
    supplier = Supplier(ledger)
    other = "0950110153000" + supply.gs1_check_digit("0950110153000")
    for index, pharmacy in enumerate(PHARMACIES):
        mine = 60 if index == 0 else 8 + index
        ledger.ok(pharmacy, "supply.dispense", supply.SupplyDispense(supplier.deliver(pharmacy, mine)))
        theirs = tuple(PackRef(other, f"O{index}-{serial}") for serial in range(90))
        ledger.ok(
            MAKER,
            "supply.commission",
            supply.SupplyCommission(other, "L1", "2031-12-31", tuple(p.serial for p in theirs)),
        )
        shipment = supplier.ship(MAKER, pharmacy.public_key, theirs)
        ledger.ok(pharmacy, "supply.receive", supply.SupplyReceive(shipment, theirs, ()))
        ledger.ok(pharmacy, "supply.dispense", supply.SupplyDispense(theirs))
    subject_week = week(ledger)
    next_week(ledger)
    assert raise_flag(ledger, FlagSubject("volume-peers", PHARMACIES[0].public_key, GTIN, subject_week)) == "ok"
    assert "in line with the peers" in raise_flag(
        ledger, FlagSubject("volume-peers", PHARMACIES[1].public_key, GTIN, subject_week)
    )


def test_stolen_and_lost_packs_clustering_at_a_site_are_flagged(ledger: LedgerHarness) -> None:
    supplier = Supplier(ledger)
    for index, pharmacy in enumerate(PHARMACIES):
        packs = supplier.deliver(pharmacy, 100)
        stolen = 8 if index == 0 else index % 2
        if stolen:
            ledger.ok(pharmacy, "supply.decommission", supply.SupplyDecommission(packs[:stolen], "stolen"))
        ledger.ok(pharmacy, "supply.dispense", supply.SupplyDispense(packs[stolen:]))
    subject_week = week(ledger)
    next_week(ledger)
    assert raise_flag(ledger, FlagSubject("stolen-lost", PHARMACIES[0].public_key, "*", subject_week)) == "ok"
    (flag,) = supply.flags(ledger.state)
    assert flag.evidence.observed == 8 and len(flag.evidence.incidents) == 1
    assert "under the thresholds" in raise_flag(
        ledger, FlagSubject("stolen-lost", PHARMACIES[1].public_key, "*", subject_week)
    )


def test_packs_vanishing_from_a_shippers_shipments_are_flagged(ledger: LedgerHarness) -> None:
    supplier = Supplier(ledger)
    for pharmacy in PHARMACIES[:2]:
        supplier.deliver(pharmacy, 50, missing=6)
    subject_week = week(ledger)
    next_week(ledger)
    assert raise_flag(ledger, FlagSubject("transit-loss", DISTRIBUTOR.public_key, "*", subject_week)) == "ok"
    (flag,) = supply.flags(ledger.state)
    assert (flag.evidence.observed, flag.evidence.base) == (12, 100)


# -- flags on the ledger ---------------------------------------------------------------------------


def gap_flag(ledger: LedgerHarness) -> bytes:
    supplier = Supplier(ledger)
    shipment = supplier.ship(MAKER, DISTRIBUTOR.public_key, supplier.make(2))
    subject = FlagSubject("custody-gap", MAKER.public_key, "*", week(ledger), shipment)
    ledger.time_ms += 15 * DAY_MS
    assert raise_flag(ledger, subject) == "ok"
    return supply.flags(ledger.state)[0].id


def test_a_flag_is_reviewed_then_closed_by_a_regulator(ledger: LedgerHarness) -> None:
    flag_id = gap_flag(ledger)
    ledger.refused(REGULATOR, "supply.flag.close", FlagClose(flag_id, "explained", "late truck"), RejectReason.INVALID)
    ledger.ok(REGULATOR, "supply.flag.review", FlagReview(flag_id))
    ledger.ok(REGULATOR, "supply.flag.close", FlagClose(flag_id, "explained", "the truck broke down"))
    flag = supply.flag(ledger.state, flag_id)
    assert flag is not None and flag.status == "closed" and flag.finding == "explained"
    assert flag.reviewed is not None and flag.reviewed.by == REGULATOR.public_key


def test_a_non_regulator_never_raises_reviews_or_closes_a_flag(ledger: LedgerHarness) -> None:
    flag_id = gap_flag(ledger)
    before = dict(ledger.state.data)
    for signer in (PHARMACIES[0], key("stranger")):
        ledger.refused(signer, "supply.flag.review", FlagReview(flag_id), RejectReason.NOT_AUTHORISED)
    ledger.ok(ledger.validators[2], "supply.flag.review", FlagReview(flag_id))
    detail = ledger.refused(
        PHARMACIES[0], "supply.flag.close", FlagClose(flag_id, "false-signal", "no"), RejectReason.NOT_AUTHORISED
    )
    assert "only a validator or a regulator" in detail
    flag = supply.flag(ledger.state, flag_id)
    assert flag is not None and flag.status == "under-review"
    assert {k for k in ledger.state.data if k.startswith("supply/flag")} == {
        k for k in before if k.startswith("supply/flag")
    }


def test_a_party_to_a_flag_never_oversees_it(ledger: LedgerHarness) -> None:
    supplier = Supplier(ledger)
    validator_site = ledger.validators[0]
    shipment = supplier.ship(MAKER, validator_site.public_key, supplier.make(2))
    subject = FlagSubject("custody-gap", MAKER.public_key, "*", week(ledger), shipment)
    ledger.time_ms += 15 * DAY_MS
    assert "a party to a flag never raises" in raise_flag(ledger, subject, validator_site)
    assert raise_flag(ledger, subject, ledger.validators[1]) == "ok"
    flag_id = supply.flags(ledger.state)[0].id
    ledger.refused(validator_site, "supply.flag.review", FlagReview(flag_id), RejectReason.NOT_AUTHORISED)


def test_a_forged_flag_is_refused_and_changes_nothing(ledger: LedgerHarness) -> None:
    supplier = Supplier(ledger)
    ledger.ok(PHARMACIES[0], "supply.dispense", supply.SupplyDispense(supplier.deliver(PHARMACIES[0], 5)))
    next_week(ledger, 12)
    forged = [
        FlagSubject("stolen-lost", PHARMACIES[0].public_key, "*", week(ledger) - 1),
        FlagSubject("balance", PHARMACIES[0].public_key, GTIN, 0),
        FlagSubject("volume-history", PHARMACIES[0].public_key, GTIN, week(ledger) + 5),
        FlagSubject("custody-gap", PHARMACIES[0].public_key, "*", 0, b"\x00" * 32),
        FlagSubject("no-such-rule", PHARMACIES[0].public_key, "*", 0),
        FlagSubject("balance", PHARMACIES[0].public_key, "not-a-gtin", 0),
        FlagSubject("balance", key("nobody").public_key, GTIN, 0),
    ]
    before = dict(ledger.state.data)
    for subject in forged:
        assert raise_flag(ledger, subject).startswith("invalid: the evidence does not recompute")
    assert supply.flag_count(ledger.state) == 0
    assert {k: v for k, v in ledger.state.data.items() if k.startswith("supply/")} == {
        k: v for k, v in before.items() if k.startswith("supply/")
    }


def test_one_subject_is_flagged_once(ledger: LedgerHarness) -> None:
    flag_id = gap_flag(ledger)
    subject = supply.flags(ledger.state)[0].subject
    ledger.refused(ledger.validators[1], "supply.flag.raise", FlagRaise(subject), RejectReason.DUPLICATE)
    assert supply.flag_of(ledger.state, subject) == flag_id


def test_only_a_gtins_maker_schedules_it_and_never_unschedules_it(ledger: LedgerHarness) -> None:
    Supplier(ledger).make(1)
    rival = key("rival")
    ledger.admit_organisation(rival, "manufacturer")
    ledger.refused(rival, "supply.product.schedule", ProductSchedule(GTIN, "CII"), RejectReason.NOT_AUTHORISED)
    ledger.refused(PHARMACIES[0], "supply.product.schedule", ProductSchedule(GTIN, "CII"), RejectReason.NOT_AUTHORISED)
    ledger.refused(MAKER, "supply.product.schedule", ProductSchedule(GTIN, ""), RejectReason.INVALID)
    ledger.ok(MAKER, "supply.product.schedule", ProductSchedule(GTIN, "CII"))
    ledger.refused(MAKER, "supply.product.schedule", ProductSchedule(GTIN, "CII"), RejectReason.DUPLICATE)
    assert supply.schedule_of(ledger.state, GTIN) == "CII"


class CountingState:
    def __init__(self, ledger: LedgerHarness) -> None:
        self.ledger, self.reads = ledger, 0

    def state_get(self, state_key: str) -> bytes | None:
        self.reads += 1
        return self.ledger.state.state_get(state_key)


def test_checking_a_flag_reads_a_bounded_state_whatever_the_flood_of_events(ledger: LedgerHarness) -> None:
    supplier = Supplier(ledger)
    reads = []
    for flood in (1, 20):
        for pharmacy in PHARMACIES:
            for _ in range(flood):
                ledger.ok(pharmacy, "supply.dispense", supply.SupplyDispense(supplier.deliver(pharmacy, 3)))
        subject = FlagSubject("volume-peers", PHARMACIES[0].public_key, GTIN, week(ledger))
        next_week(ledger)
        counting = CountingState(ledger)
        with pytest.raises(supply.NoSignal):
            supply.evidence(counting, subject, ledger.time_ms)
        reads.append(counting.reads)
    bound = 2 + 2 * (1 + supply.thresholds.PEERS_MAX) * supply.thresholds.PEER_WEEKS
    assert reads[0] == reads[1] <= bound


# -- the generator ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def outcome() -> Outcome:
    return run(3, WorldShape())


def test_the_generator_plants_patterns_the_signals_find_and_flags_no_honest_site(outcome: Outcome) -> None:
    detected = {plant.pattern for plant in outcome.detected()}
    assert {"pill-mill", "surge", "leaky-distributor", "theft-cluster"} <= detected
    assert outcome.false_flagged() == []
    assert outcome.packs > 10_000


def test_the_generator_is_deterministic() -> None:
    small = WorldShape(makers=2, products_per_maker=2, distributors=3, pharmacies=6, hospitals=3, weeks=4)
    first, again = (run(7, small) for _ in range(2))
    assert first.flags, "a world small enough to run twice still raises flags to compare"
    assert [flag.id for flag in again.flags] == [flag.id for flag in first.flags]
    assert again.packs == first.packs
