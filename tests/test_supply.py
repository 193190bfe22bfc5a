"""Supply-chain rules: each allowed and refused case of commission, ship, receive,
dispense, decommission, recall and verify; the queries; a property test of custody
over random histories; and the full story from manufacturer to patient."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ledger_harness import LedgerHarness, key
from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.supply import (
    PackRef,
    SupplyCommission,
    SupplyDecommission,
    SupplyDispense,
    SupplyRecall,
    SupplyReceive,
    SupplyShip,
    SupplyVerify,
    alert_count,
    alerts,
    gs1_check_digit,
    gtin_problem,
    lot_packs,
    trace,
    verify,
)
from p2pmed.ledger.errors import RejectReason

MAKER, RIVAL, DISTRIBUTOR, PHARMACY, HOSPITAL = (
    key("maker"),
    key("rival"),
    key("distributor"),
    key("pharmacy"),
    key("hospital"),
)
STRANGER = key("stranger")
GTIN = "10614141073464"
OTHER_GTIN = "0950110153000" + gs1_check_digit("0950110153000")
EXPIRY = "2031-12-31"


def ref(serial: str, gtin: str = GTIN) -> PackRef:
    return PackRef(gtin, serial)


def admitted(ledger: LedgerHarness) -> LedgerHarness:
    kinds = (
        (MAKER, "manufacturer"),
        (RIVAL, "manufacturer"),
        (DISTRIBUTOR, "distributor"),
        (PHARMACY, "pharmacy"),
        (HOSPITAL, "hospital"),
    )
    for organisation, kind in kinds:
        ledger.admit_organisation(organisation, kind)
    ledger.grant_prefix(MAKER, "0614141")
    ledger.grant_prefix(RIVAL, "9501101")
    return ledger


@pytest.fixture
def ledger() -> LedgerHarness:
    return admitted(LedgerHarness())


def scan(serial: str, lot: str = "L1", expiry: str = EXPIRY) -> SupplyVerify:
    """A scan of the four elements printed on a pack (by default those ``commission`` gives)."""
    return SupplyVerify(GTIN, serial, lot, expiry)


def commission(ledger: LedgerHarness, *serials: str, lot: str = "L1", expiry: str = EXPIRY) -> tuple[PackRef, ...]:
    ledger.ok(MAKER, "supply.commission", SupplyCommission(GTIN, lot, expiry, serials))
    return tuple(ref(serial) for serial in serials)


def ship(ledger: LedgerHarness, sender: SigningKey, destination: SigningKey, packs: tuple[PackRef, ...]) -> bytes:
    result = ledger.run(sender, "supply.ship", SupplyShip(destination.public_key, packs))
    assert result.ok, result.detail
    return result.tx_id


def deliver(ledger: LedgerHarness, sender: SigningKey, destination: SigningKey, packs: tuple[PackRef, ...]) -> bytes:
    shipment = ship(ledger, sender, destination, packs)
    ledger.ok(destination, "supply.receive", SupplyReceive(shipment, packs, ()))
    return shipment


def holder(ledger: LedgerHarness, pack: PackRef) -> bytes:
    found = supply.pack(ledger.state, pack.gtin, pack.serial)
    assert found is not None
    return found.holder


def status(ledger: LedgerHarness, pack: PackRef, organisation: SigningKey | None = None) -> str:
    asking = None if organisation is None else organisation.public_key
    return verify(ledger.state, pack.gtin, pack.serial, ledger.time_ms, asking).status


def today(ledger: LedgerHarness) -> str:
    return datetime.date.fromordinal(
        datetime.date(1970, 1, 1).toordinal() + ledger.time_ms // supply.DAY_MS
    ).isoformat()


# -- codes --------------------------------------------------------------------------------


def test_gtin_check_digits_follow_gs1_mod_10() -> None:
    assert gs1_check_digit("1061414107346") == "4"
    assert gs1_check_digit("0400638133393") == "1"  # GTIN-13 4006381333931 as a GTIN-14
    assert gtin_problem(GTIN) is None
    assert "expected 4" in (gtin_problem("10614141073465") or "")
    assert "14 digits" in (gtin_problem("1061414107346") or "")
    assert "14 digits" in (gtin_problem("1061414107346\u0664") or ""), "only ASCII digits"


# -- commission -------------------------------------------------------------------------------


def test_a_manufacturer_commissions_packs_that_it_then_holds(ledger: LedgerHarness) -> None:
    (pack,) = commission(ledger, "S1")
    found = supply.pack(ledger.state, GTIN, "S1")
    assert found is not None and found.holder == MAKER.public_key == found.manufacturer
    assert (found.status, found.lot) == ("held", "L1")
    assert [event.kind for event in trace(ledger.state, GTIN, "S1")] == ["commission"]
    assert status(ledger, pack, MAKER) == "genuine-dispensable"


def test_only_a_manufacturer_in_force_commissions(ledger: LedgerHarness) -> None:
    body = SupplyCommission(GTIN, "L1", EXPIRY, ("S1",))
    assert "only a manufacturer" in ledger.refused(PHARMACY, "supply.commission", body, RejectReason.NOT_AUTHORISED)
    assert "organisation in force" in ledger.refused(STRANGER, "supply.commission", body, RejectReason.NOT_AUTHORISED)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (SupplyCommission("1061414107346", "L1", EXPIRY, ("S1",)), "must be 14 digits"),
        (SupplyCommission("1061414107346X", "L1", EXPIRY, ("S1",)), "must be 14 digits"),
        (SupplyCommission("10614141073465", "L1", EXPIRY, ("S1",)), "wrong check digit: expected 4"),
        (SupplyCommission(GTIN, "L 1", EXPIRY, ("S1",)), "lot 'L 1' must be 1..20 characters of GS1 set 82"),
        (SupplyCommission(GTIN, "", EXPIRY, ("S1",)), "lot '' must be"),
        (SupplyCommission(GTIN, "L1", "31/12/2031", ("S1",)), "YYYY-MM-DD"),
        (SupplyCommission(GTIN, "L1", "2031-02-30", ("S1",)), "YYYY-MM-DD"),
        (SupplyCommission(GTIN, "L1", "2020-01-01", ("S1",)), "has passed"),
        (SupplyCommission(GTIN, "L1", EXPIRY, ()), "give 1..1000 serials"),
        (SupplyCommission(GTIN, "L1", EXPIRY, tuple(str(n) for n in range(1001))), "give 1..1000 serials"),
        (SupplyCommission(GTIN, "L1", EXPIRY, ("S 1",)), "serial 'S 1' must be"),
        (SupplyCommission(GTIN, "L1", EXPIRY, ("é",)), "serial 'é' must be"),
        (SupplyCommission(GTIN, "L1", EXPIRY, ("X" * 21,)), "must be 1..20 characters"),
        (SupplyCommission(GTIN, "L1", EXPIRY, ("S1", "S2", "S1")), "listed twice"),
    ],
)
def test_a_malformed_commission_is_refused(ledger: LedgerHarness, body: SupplyCommission, fragment: str) -> None:
    assert fragment in ledger.refused(MAKER, "supply.commission", body, RejectReason.INVALID)


def test_a_serial_is_commissioned_once(ledger: LedgerHarness) -> None:
    commission(ledger, "S1")
    body = SupplyCommission(GTIN, "L2", EXPIRY, ("S2", "S1"))
    assert "(21)S1 is already commissioned" in ledger.refused(MAKER, "supply.commission", body, RejectReason.DUPLICATE)
    assert supply.pack(ledger.state, GTIN, "S2") is None, "a refused commission records nothing"


def test_a_gtin_is_commissioned_only_by_the_holder_of_its_company_prefix(ledger: LedgerHarness) -> None:
    commission(ledger, "S1")
    body = SupplyCommission(GTIN, "L9", EXPIRY, ("S9",))
    detail = ledger.refused(RIVAL, "supply.commission", body, RejectReason.NOT_AUTHORISED)
    assert f"carries company prefix 0614141, granted to {MAKER.public_key.hex()[:16]}" in detail
    ledger.ok(RIVAL, "supply.commission", SupplyCommission(OTHER_GTIN, "L9", EXPIRY, ("S9",)))


def test_a_lot_keeps_its_first_expiry(ledger: LedgerHarness) -> None:
    commission(ledger, "S1")
    commission(ledger, "S2")  # same lot, same expiry: fine
    body = SupplyCommission(GTIN, "L1", "2032-01-01", ("S3",))
    assert "a lot has one expiry" in ledger.refused(MAKER, "supply.commission", body, RejectReason.INVALID)


def test_a_recalled_lot_takes_no_more_packs(ledger: LedgerHarness) -> None:
    commission(ledger, "S1")
    ledger.ok(MAKER, "supply.recall", SupplyRecall(GTIN, "L1", (), "contamination"))
    body = SupplyCommission(GTIN, "L1", EXPIRY, ("S2",))
    assert "was recalled" in ledger.refused(MAKER, "supply.commission", body, RejectReason.INVALID)


def test_serials_with_slashes_and_percents_are_distinct_packs(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "a", "a/0000", "a%2F0000", "a%")
    deliver(ledger, MAKER, PHARMACY, packs[1:2])
    assert [holder(ledger, pack) for pack in packs] == [
        MAKER.public_key,
        PHARMACY.public_key,
        MAKER.public_key,
        MAKER.public_key,
    ]
    assert [len(trace(ledger.state, pack.gtin, pack.serial)) for pack in packs] == [1, 3, 1, 1]


# -- ship ------------------------------------------------------------------------------------------


def test_the_holder_ships_packs_which_are_then_in_transit(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    shipment_id = ship(ledger, MAKER, DISTRIBUTOR, packs)
    sent = supply.shipment(ledger.state, shipment_id)
    assert sent is not None and (sent.source, sent.destination, sent.packs, sent.receipt) == (
        MAKER.public_key,
        DISTRIBUTOR.public_key,
        packs,
        None,
    )
    assert holder(ledger, packs[0]) == MAKER.public_key, "the shipper keeps custody until the destination receives"
    assert supply.shipment_of(ledger.state, packs[0]) == shipment_id
    assert status(ledger, packs[0], DISTRIBUTOR) == "in-transit"


def test_only_the_holder_ships(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1")
    detail = ledger.refused(
        DISTRIBUTOR, "supply.ship", SupplyShip(PHARMACY.public_key, packs), RejectReason.NOT_AUTHORISED
    )
    assert "is held by" in detail and "only its holder can ship it" in detail
    body = SupplyShip(PHARMACY.public_key, packs)
    assert "organisation in force" in ledger.refused(STRANGER, "supply.ship", body, RejectReason.NOT_AUTHORISED)


def test_custody_must_be_continuous_for_every_pack_of_a_shipment(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    deliver(ledger, MAKER, DISTRIBUTOR, packs[:1])
    detail = ledger.refused(
        DISTRIBUTOR, "supply.ship", SupplyShip(PHARMACY.public_key, packs), RejectReason.NOT_AUTHORISED
    )
    assert "(21)S2 is held by" in detail
    assert status(ledger, packs[0], DISTRIBUTOR) == "genuine-dispensable", "the refused shipment moved nothing"


@pytest.mark.parametrize(
    ("destination", "packs", "fragment"),
    [
        (MAKER, (ref("S1"),), "not to its sender"),
        (STRANGER, (ref("S1"),), "not an organisation in force"),
        (DISTRIBUTOR, (), "give 1..1000 packs"),
        (DISTRIBUTOR, (ref("S1"), ref("S1")), "listed twice"),
        (DISTRIBUTOR, (ref("S1", "10614141073465"),), "wrong check digit"),
        (DISTRIBUTOR, (ref("S1"), ref("NOPE")), "(21)NOPE was never commissioned"),
    ],
)
def test_a_malformed_shipment_is_refused(
    ledger: LedgerHarness, destination: SigningKey, packs: tuple[PackRef, ...], fragment: str
) -> None:
    commission(ledger, "S1")
    assert fragment in ledger.refused(
        MAKER, "supply.ship", SupplyShip(destination.public_key, packs), RejectReason.INVALID
    )


def test_a_pack_in_transit_is_not_shipped_again(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1")
    shipment_id = ship(ledger, MAKER, DISTRIBUTOR, packs)
    detail = ledger.refused(MAKER, "supply.ship", SupplyShip(PHARMACY.public_key, packs), RejectReason.INVALID)
    assert f"in transit in shipment {shipment_id.hex()}" in detail


def test_a_dispensed_decommissioned_or_missing_pack_is_not_shipped(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2", "S3")
    deliver(ledger, MAKER, PHARMACY, packs[:2])
    ledger.ok(PHARMACY, "supply.dispense", SupplyDispense(packs[:1]))
    ledger.ok(PHARMACY, "supply.decommission", SupplyDecommission(packs[1:2], "damaged"))
    shipment_id = ship(ledger, MAKER, DISTRIBUTOR, packs[2:])
    ledger.ok(DISTRIBUTOR, "supply.receive", SupplyReceive(shipment_id, (), packs[2:]))
    for sender, pack, fragment in (
        (PHARMACY, packs[0], "was already dispensed"),
        (PHARMACY, packs[1], "was decommissioned"),
        (MAKER, packs[2], "was reported missing in transit"),
    ):
        assert fragment in ledger.refused(
            sender, "supply.ship", SupplyShip(HOSPITAL.public_key, (pack,)), RejectReason.INVALID
        )


def test_a_recalled_pack_is_shipped_only_back_to_its_manufacturer(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1")
    deliver(ledger, MAKER, DISTRIBUTOR, packs)
    ledger.ok(MAKER, "supply.recall", SupplyRecall(GTIN, None, ("S1",), "mislabelled"))
    detail = ledger.refused(DISTRIBUTOR, "supply.ship", SupplyShip(PHARMACY.public_key, packs), RejectReason.INVALID)
    assert "is recalled: it may only be shipped back to its manufacturer" in detail
    deliver(ledger, DISTRIBUTOR, MAKER, packs)
    assert holder(ledger, packs[0]) == MAKER.public_key


def test_a_pack_is_shipped_a_bounded_number_of_times(ledger: LedgerHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supply.limits, "SHIPMENTS_PER_PACK_MAX", 2)
    packs = commission(ledger, "S1")
    deliver(ledger, MAKER, DISTRIBUTOR, packs)
    deliver(ledger, DISTRIBUTOR, PHARMACY, packs)
    detail = ledger.refused(PHARMACY, "supply.ship", SupplyShip(HOSPITAL.public_key, packs), RejectReason.INVALID)
    assert "has been shipped 2 times" in detail


# -- receive ----------------------------------------------------------------------------------------


def test_the_destination_receives_a_shipment_and_takes_custody(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    shipment_id = deliver(ledger, MAKER, DISTRIBUTOR, packs)
    assert [holder(ledger, pack) for pack in packs] == [DISTRIBUTOR.public_key] * 2
    sent = supply.shipment(ledger.state, shipment_id)
    assert sent is not None and sent.receipt is not None and sent.receipt.missing == ()
    events = trace(ledger.state, GTIN, "S1")
    assert [(event.kind, event.organisation, event.party) for event in events] == [
        ("commission", MAKER.public_key, None),
        ("ship", MAKER.public_key, DISTRIBUTOR.public_key),
        ("receive", DISTRIBUTOR.public_key, MAKER.public_key),
    ]
    assert events[1].tx_id == shipment_id and shipment_id.hex() in events[2].detail


def test_packs_that_did_not_arrive_are_declared_missing_and_raise_alerts(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2", "S3")
    shipment_id = ship(ledger, MAKER, DISTRIBUTOR, packs)
    ledger.ok(DISTRIBUTOR, "supply.receive", SupplyReceive(shipment_id, packs[:1], packs[1:]))
    assert holder(ledger, packs[0]) == DISTRIBUTOR.public_key
    assert holder(ledger, packs[1]) == MAKER.public_key, "custody of a lost pack stays with its last holder"
    assert status(ledger, packs[1], DISTRIBUTOR) == "missing-in-transit"
    raised = alerts(ledger.state)
    assert [(alert.kind, alert.serial) for alert in raised] == [
        ("missing-in-transit", "S2"),
        ("missing-in-transit", "S3"),
    ]
    assert shipment_id.hex() in raised[0].detail
    assert [event.kind for event in trace(ledger.state, GTIN, "S2")] == ["commission", "ship", "missing"]


def test_only_the_destination_receives(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1")
    shipment_id = ship(ledger, MAKER, DISTRIBUTOR, packs)
    body = SupplyReceive(shipment_id, packs, ())
    assert "not to the sender" in ledger.refused(PHARMACY, "supply.receive", body, RejectReason.NOT_AUTHORISED)
    assert "organisation in force" in ledger.refused(STRANGER, "supply.receive", body, RejectReason.NOT_AUTHORISED)


def test_a_shipment_is_received_once(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1")
    shipment_id = deliver(ledger, MAKER, DISTRIBUTOR, packs)
    detail = ledger.refused(
        DISTRIBUTOR, "supply.receive", SupplyReceive(shipment_id, packs, ()), RejectReason.DUPLICATE
    )
    assert "already received at height" in detail


def test_an_unknown_shipment_is_refused(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1")
    assert "no shipment has id" in ledger.refused(
        DISTRIBUTOR, "supply.receive", SupplyReceive(bytes(32), packs, ()), RejectReason.INVALID
    )
    assert "32-byte id" in ledger.refused(
        DISTRIBUTOR, "supply.receive", SupplyReceive(b"x", packs, ()), RejectReason.INVALID
    )


@pytest.mark.parametrize(
    ("arrived", "missing", "fragment"),
    [
        ((ref("S1"),), (), "mismatch: pack (01)10614141073464(21)S2 of the shipment is not listed; list it as missing"),
        ((ref("S1"), ref("S2"), ref("S3")), (), "mismatch: pack (01)10614141073464(21)S3 is not in shipment"),
        ((ref("S1"), ref("S2")), (ref("S9"),), "(21)S9 is not in shipment"),
        ((ref("S1"), ref("S2")), (ref("S2"),), "both as arrived and as missing"),
        ((ref("S1"), ref("S1"), ref("S2")), (), "listed twice"),
        ((ref("S1"),), (ref("S2", "10614141073465"),), "wrong check digit"),
    ],
)
def test_a_receipt_must_account_for_the_shipment_exactly(
    ledger: LedgerHarness, arrived: tuple[PackRef, ...], missing: tuple[PackRef, ...], fragment: str
) -> None:
    packs = commission(ledger, "S1", "S2", "S3")
    shipment_id = ship(ledger, MAKER, DISTRIBUTOR, packs[:2])
    assert fragment in ledger.refused(
        DISTRIBUTOR, "supply.receive", SupplyReceive(shipment_id, arrived, missing), RejectReason.INVALID
    )
    assert status(ledger, packs[0]) == "in-transit"


def test_a_pack_recalled_or_expired_in_transit_is_still_received(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", lot="SHORT", expiry=today(ledger))
    shipment_id = ship(ledger, MAKER, DISTRIBUTOR, packs)
    ledger.ok(MAKER, "supply.recall", SupplyRecall(GTIN, "SHORT", (), "sterility"))
    ledger.time_ms += 2 * supply.DAY_MS
    ledger.ok(DISTRIBUTOR, "supply.receive", SupplyReceive(shipment_id, packs, ()))
    assert holder(ledger, packs[0]) == DISTRIBUTOR.public_key


# -- dispense --------------------------------------------------------------------------------------------


def test_a_pharmacy_or_hospital_dispenses_a_pack_it_holds_once(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    deliver(ledger, MAKER, PHARMACY, packs[:1])
    deliver(ledger, MAKER, HOSPITAL, packs[1:])
    ledger.ok(PHARMACY, "supply.dispense", SupplyDispense(packs[:1]))
    ledger.ok(HOSPITAL, "supply.dispense", SupplyDispense(packs[1:]))
    assert status(ledger, packs[0]) == "already-dispensed"
    detail = ledger.refused(PHARMACY, "supply.dispense", SupplyDispense(packs[:1]), RejectReason.DUPLICATE)
    assert "was already dispensed" in detail


def test_only_a_pharmacy_or_hospital_dispenses(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1")
    deliver(ledger, MAKER, DISTRIBUTOR, packs)
    detail = ledger.refused(DISTRIBUTOR, "supply.dispense", SupplyDispense(packs), RejectReason.NOT_AUTHORISED)
    assert "only a hospital or pharmacy dispenses packs; the sender is a distributor" in detail
    assert "organisation in force" in ledger.refused(
        STRANGER, "supply.dispense", SupplyDispense(packs), RejectReason.NOT_AUTHORISED
    )


def test_a_pack_held_elsewhere_or_in_transit_is_not_dispensed(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    deliver(ledger, MAKER, HOSPITAL, packs[:1])
    assert "only its holder can dispense it" in ledger.refused(
        PHARMACY, "supply.dispense", SupplyDispense(packs[:1]), RejectReason.NOT_AUTHORISED
    )
    ship(ledger, MAKER, PHARMACY, packs[1:])
    assert "in transit" in ledger.refused(PHARMACY, "supply.dispense", SupplyDispense(packs[1:]), RejectReason.INVALID)


@pytest.mark.parametrize(
    "recall", [SupplyRecall(GTIN, "L1", (), "recall"), SupplyRecall(GTIN, None, ("S1",), "recall")]
)
def test_a_recalled_pack_is_never_dispensed(ledger: LedgerHarness, recall: SupplyRecall) -> None:
    packs = commission(ledger, "S1")
    deliver(ledger, MAKER, PHARMACY, packs)
    ledger.ok(MAKER, "supply.recall", recall)
    assert "is recalled: never dispense it" in ledger.refused(
        PHARMACY, "supply.dispense", SupplyDispense(packs), RejectReason.INVALID
    )


def test_a_pack_is_dispensed_until_the_end_of_its_expiry_day_utc(ledger: LedgerHarness) -> None:
    expiry = today(ledger)
    packs = commission(ledger, "S1", "S2", lot="SHORT", expiry=expiry)
    deliver(ledger, MAKER, PHARMACY, packs)
    ledger.time_ms = supply.expiry_end_ms(expiry) - 2_000
    ledger.ok(PHARMACY, "supply.dispense", SupplyDispense(packs[:1]))  # the last second of the day
    detail = ledger.refused(PHARMACY, "supply.dispense", SupplyDispense(packs[1:]), RejectReason.INVALID)
    assert f"expired on {expiry}: decommission it" in detail
    assert status(ledger, packs[1], PHARMACY) == "expired"


def test_an_unknown_or_decommissioned_pack_is_not_dispensed(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1")
    deliver(ledger, MAKER, PHARMACY, packs)
    ledger.ok(PHARMACY, "supply.decommission", SupplyDecommission(packs, "stolen"))
    assert "was decommissioned" in ledger.refused(
        PHARMACY, "supply.dispense", SupplyDispense(packs), RejectReason.INVALID
    )
    detail = ledger.refused(PHARMACY, "supply.dispense", SupplyDispense((ref("FAKE"),)), RejectReason.INVALID)
    assert "never commissioned: a suspect counterfeit" in detail


# -- decommission ------------------------------------------------------------------------------------------


def test_the_holder_decommissions_packs_even_recalled_ones(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    ledger.ok(MAKER, "supply.recall", SupplyRecall(GTIN, None, ("S2",), "recall"))
    ledger.ok(MAKER, "supply.decommission", SupplyDecommission(packs, "destroyed"))
    assert status(ledger, packs[0]) == "decommissioned"
    assert [(event.kind, event.detail) for event in trace(ledger.state, GTIN, "S1")][-1] == (
        "decommission",
        "destroyed",
    )
    detail = ledger.refused(
        MAKER, "supply.decommission", SupplyDecommission(packs[:1], "destroyed"), RejectReason.DUPLICATE
    )
    assert "was decommissioned" in detail


def test_a_decommission_is_refused_for_a_bad_reason_or_a_pack_not_held(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    detail = ledger.refused(MAKER, "supply.decommission", SupplyDecommission(packs, "lunch"), RejectReason.INVALID)
    assert "unknown reason 'lunch'; known: damaged, destroyed" in detail
    detail = ledger.refused(
        DISTRIBUTOR, "supply.decommission", SupplyDecommission(packs, "lost"), RejectReason.NOT_AUTHORISED
    )
    assert "only its holder can decommission it" in detail
    ship(ledger, MAKER, PHARMACY, packs[:1])
    assert "in transit" in ledger.refused(
        MAKER, "supply.decommission", SupplyDecommission(packs[:1], "lost"), RejectReason.INVALID
    )
    deliver(ledger, MAKER, PHARMACY, packs[1:])
    ledger.ok(PHARMACY, "supply.dispense", SupplyDispense(packs[1:]))
    detail = ledger.refused(
        PHARMACY, "supply.decommission", SupplyDecommission(packs[1:], "lost"), RejectReason.INVALID
    )
    assert "was already dispensed" in detail
    body = SupplyDecommission(packs, "lost")
    assert "organisation in force" in ledger.refused(STRANGER, "supply.decommission", body, RejectReason.NOT_AUTHORISED)


# -- recall -------------------------------------------------------------------------------------------------


def test_a_lot_recall_reaches_every_pack_of_the_lot_and_no_other(ledger: LedgerHarness) -> None:
    packs = (*commission(ledger, "S1", "S2"), *commission(ledger, "T1", lot="L2"))
    deliver(ledger, MAKER, PHARMACY, packs)
    ledger.ok(MAKER, "supply.recall", SupplyRecall(GTIN, "L1", (), "particles in vial"))
    assert [status(ledger, pack, PHARMACY) for pack in packs] == ["recalled", "recalled", "genuine-dispensable"]
    verdict = verify(ledger.state, GTIN, "S1", ledger.time_ms)
    assert "particles in vial" in verdict.message and not verdict.dispensable
    assert [(event.kind, event.detail) for event in trace(ledger.state, GTIN, "S1")][-1] == (
        "recall",
        "lot L1: particles in vial",
    )


def test_a_serial_recall_reaches_the_listed_packs(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    ledger.ok(MAKER, "supply.recall", SupplyRecall(GTIN, None, ("S2",), "tampered seal"))
    assert [status(ledger, pack) for pack in packs] == ["genuine-dispensable", "recalled"]
    assert trace(ledger.state, GTIN, "S2")[-1].detail == "serial: tampered seal"


def test_only_the_gtins_manufacturer_recalls(ledger: LedgerHarness) -> None:
    commission(ledger, "S1")
    body = SupplyRecall(GTIN, "L1", (), "recall")
    assert "only GTIN 10614141073464's manufacturer" in ledger.refused(
        RIVAL, "supply.recall", body, RejectReason.NOT_AUTHORISED
    )
    assert "organisation in force" in ledger.refused(STRANGER, "supply.recall", body, RejectReason.NOT_AUTHORISED)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (SupplyRecall(OTHER_GTIN, "L1", (), "recall"), "no pack of GTIN"),
        (SupplyRecall("10614141073465", "L1", (), "recall"), "wrong check digit"),
        (SupplyRecall(GTIN, "L1", ("S1",), "recall"), "not both or neither"),
        (SupplyRecall(GTIN, None, (), "recall"), "not both or neither"),
        (SupplyRecall(GTIN, "L7", (), "recall"), "no pack of lot 'L7'"),
        (SupplyRecall(GTIN, "L 7", (), "recall"), "lot 'L 7' must be"),
        (SupplyRecall(GTIN, None, ("S9",), "recall"), "(21)S9 was never commissioned"),
        (SupplyRecall(GTIN, None, ("S1", "S1"), "recall"), "listed twice"),
        (SupplyRecall(GTIN, "L1", (), ""), "1..200 printable"),
        (SupplyRecall(GTIN, "L1", (), "two\nlines"), "printable"),
    ],
)
def test_a_malformed_recall_is_refused(ledger: LedgerHarness, body: SupplyRecall, fragment: str) -> None:
    commission(ledger, "S1")
    assert fragment in ledger.refused(MAKER, "supply.recall", body, RejectReason.INVALID)


def test_a_recall_is_not_repeated(ledger: LedgerHarness) -> None:
    commission(ledger, "S1", "S2")
    ledger.ok(MAKER, "supply.recall", SupplyRecall(GTIN, None, ("S1",), "recall"))
    detail = ledger.refused(
        MAKER, "supply.recall", SupplyRecall(GTIN, None, ("S2", "S1"), "again"), RejectReason.DUPLICATE
    )
    assert "(21)S1 is already recalled" in detail
    ledger.ok(MAKER, "supply.recall", SupplyRecall(GTIN, "L1", (), "whole lot"))
    assert "already recalled at height" in ledger.refused(
        MAKER, "supply.recall", SupplyRecall(GTIN, "L1", (), "x"), RejectReason.DUPLICATE
    )
    assert "(21)S2 is already recalled" in ledger.refused(
        MAKER, "supply.recall", SupplyRecall(GTIN, None, ("S2",), "x"), RejectReason.DUPLICATE
    )


# -- verify (scans) and alerts ------------------------------------------------------------------------------------


def test_an_unknown_serial_scanned_is_recorded_as_a_suspect_counterfeit(ledger: LedgerHarness) -> None:
    ledger.ok(PHARMACY, "supply.verify", scan("FAKE-1"))
    (alert,) = alerts(ledger.state)
    assert (alert.kind, alert.serial, alert.organisation, alert.height) == (
        "unknown-suspect-counterfeit",
        "FAKE-1",
        PHARMACY.public_key,
        ledger.height,
    )
    assert "Suspect counterfeit" in alert.detail
    assert [(event.kind, event.detail) for event in trace(ledger.state, GTIN, "FAKE-1")] == [
        ("scan", "unknown-suspect-counterfeit")
    ]


def test_a_scan_of_a_pack_in_good_standing_is_recorded_without_an_alert(ledger: LedgerHarness) -> None:
    commission(ledger, "S1")
    ledger.ok(MAKER, "supply.verify", scan("S1"))
    assert trace(ledger.state, GTIN, "S1")[-1].detail == "genuine-dispensable"
    assert alert_count(ledger.state) == 0


def test_a_scan_of_a_pack_out_of_circulation_raises_an_alert(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2", "S3")
    ledger.ok(MAKER, "supply.decommission", SupplyDecommission(packs[:1], "stolen"))
    ledger.ok(MAKER, "supply.recall", SupplyRecall(GTIN, None, ("S2",), "recall"))
    for serial in ("S1", "S2", "S3"):
        ledger.ok(HOSPITAL, "supply.verify", scan(serial))
    assert [(alert.kind, alert.serial) for alert in alerts(ledger.state)] == [
        ("decommissioned-stolen", "S1"),  # raised when it was decommissioned
        ("decommissioned", "S1"),
        ("recalled", "S2"),
    ]
    assert "(stolen)" in alerts(ledger.state)[1].detail


def test_a_real_serial_on_another_lot_or_expiry_is_a_suspect_product(ledger: LedgerHarness) -> None:
    """DSCSA verifies all four elements of a product identifier: a serial copied onto a pack
    of another lot or expiry is caught although the serial exists."""
    commission(ledger, "S1", lot="L1", expiry=EXPIRY)
    ledger.ok(PHARMACY, "supply.verify", scan("S1", lot="L2"))
    ledger.ok(PHARMACY, "supply.verify", scan("S1", expiry="2032-01-31"))
    ledger.ok(MAKER, "supply.verify", scan("S1"))  # the genuine pack, where it is
    assert [(alert.kind, alert.serial) for alert in alerts(ledger.state)] == [("mismatch-suspect", "S1")] * 2
    assert "lot L2 (commissioned: L1)" in alerts(ledger.state)[0].detail
    assert "expiry 2032-01-31 (commissioned: 2031-12-31)" in alerts(ledger.state)[1].detail
    assert [event.detail for event in trace(ledger.state, GTIN, "S1") if event.kind == "scan"] == [
        "mismatch-suspect",
        "mismatch-suspect",
        "genuine-dispensable",
    ]
    copied = verify(ledger.state, GTIN, "S1", ledger.time_ms, lot="L2")
    assert copied.status == "mismatch-suspect" and not copied.dispensable
    assert verify(ledger.state, GTIN, "S1", ledger.time_ms, lot="L1", expiry=EXPIRY).status == "genuine-dispensable"
    with pytest.raises(ValueError, match="lot 'L 2'"):
        verify(ledger.state, GTIN, "S1", ledger.time_ms, lot="L 2")


def test_decommissioning_as_stolen_or_lost_raises_an_alert_other_reasons_do_not(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2", "S3", "S4")
    for pack, reason in zip(packs, ("stolen", "lost", "damaged", "expired"), strict=True):
        ledger.ok(MAKER, "supply.decommission", SupplyDecommission((pack,), reason))
    assert [(alert.kind, alert.serial, alert.organisation) for alert in alerts(ledger.state)] == [
        ("decommissioned-stolen", "S1", MAKER.public_key),
        ("decommissioned-lost", "S2", MAKER.public_key),
    ]


def test_a_dispense_refused_because_the_pack_is_gone_raises_one_alert_a_clone(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2", "S3")
    deliver(ledger, MAKER, PHARMACY, packs)
    ledger.ok(PHARMACY, "supply.dispense", SupplyDispense(packs[:2]))
    detail = ledger.refused(PHARMACY, "supply.dispense", SupplyDispense(packs), RejectReason.DUPLICATE)
    (alert,) = alerts(ledger.state)  # one per refused transaction, however many packs it names
    assert (alert.kind, alert.serial, alert.organisation, alert.detail) == (
        "dispense-refused",
        "S1",
        PHARMACY.public_key,
        detail,
    )
    ledger.refused(DISTRIBUTOR, "supply.dispense", SupplyDispense(packs[2:]), RejectReason.NOT_AUTHORISED)
    assert alert_count(ledger.state) == 1, "a refusal with no pack gone raises nothing"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (SupplyVerify("123", "S1", "L1", EXPIRY), "must be 14 digits"),
        (scan(""), "serial '' must be"),
        (scan("a b"), "serial 'a b'"),
        (scan("S1", lot=""), "lot '' must be"),
        (scan("S1", expiry="31/12/2031"), "YYYY-MM-DD"),
    ],
)
def test_a_malformed_scan_is_refused(ledger: LedgerHarness, body: SupplyVerify, fragment: str) -> None:
    assert fragment in ledger.refused(PHARMACY, "supply.verify", body, RejectReason.INVALID)


def test_only_an_organisation_in_force_records_scans(ledger: LedgerHarness) -> None:
    detail = ledger.refused(STRANGER, "supply.verify", scan("S1"), RejectReason.NOT_AUTHORISED)
    assert "only an organisation in force records scans" in detail


def test_scans_past_the_listed_limit_are_counted_not_listed(
    ledger: LedgerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supply.limits, "SCANS_LISTED_MAX", 2)
    for _ in range(4):
        ledger.ok(PHARMACY, "supply.verify", scan("FAKE"))
    assert len(trace(ledger.state, GTIN, "FAKE")) == 2
    assert alert_count(ledger.state) == 4, "every alarming scan raises an alert"


def test_alerts_are_listed_in_pages(ledger: LedgerHarness) -> None:
    for serial in ("F1", "F2", "F3"):
        ledger.ok(PHARMACY, "supply.verify", scan(serial))
    assert [alert.serial for alert in alerts(ledger.state, start=1, limit=5)] == ["F2", "F3"]
    assert [alert.index for alert in alerts(ledger.state, limit=2)] == [0, 1]
    assert alerts(ledger.state, start=9) == []


def test_the_verify_query_answers_each_status(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "OK", "GONE", "LOST", "MOVING", "THERE")
    deliver(ledger, MAKER, PHARMACY, packs[:2])
    ledger.ok(PHARMACY, "supply.decommission", SupplyDecommission(packs[1:2], "damaged"))
    ledger.ok(
        DISTRIBUTOR, "supply.receive", SupplyReceive(ship(ledger, MAKER, DISTRIBUTOR, packs[2:3]), (), packs[2:3])
    )
    ship(ledger, MAKER, PHARMACY, packs[3:4])
    expected = ["genuine-dispensable", "decommissioned", "missing-in-transit", "in-transit", "not-held-here"]
    assert [status(ledger, pack, PHARMACY) for pack in packs] == expected
    assert status(ledger, packs[4]) == "genuine-dispensable", "without an organisation, the holder is asking"
    assert status(ledger, ref("NEVER")) == "unknown-suspect-counterfeit"
    late = verify(ledger.state, GTIN, "OK", supply.expiry_end_ms(EXPIRY))
    assert late.status == "expired" and "Expired on 2031-12-31" in late.message
    with pytest.raises(ValueError, match="wrong check digit"):
        verify(ledger.state, "10614141073465", "OK", ledger.time_ms)
    with pytest.raises(ValueError, match="serial"):
        trace(ledger.state, GTIN, "")


# -- property: custody over random histories ------------------------------------------------------------------

PARTIES = (MAKER, DISTRIBUTOR, PHARMACY, HOSPITAL)
SERIALS = ("P0", "P1", "P2", "P3")
LOTS = {"P0": "A", "P1": "A", "P2": "B", "P3": "B"}
# None: the party the step plausibly comes from (the holder, the destination, the
# manufacturer), found at run time, so random runs get past the first refusals.
PARTY = st.sampled_from((None, None, *PARTIES))
LOST = st.lists(st.sampled_from((False, False, False, True)), min_size=3, max_size=3)


class Custody(RuleBasedStateMachine):
    """Random ship / receive / dispense / recall attempts by random or plausible
    parties; after each, the ledger's histories must show unbroken custody."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = LedgerHarness()
        for party, kind in zip(PARTIES, ("manufacturer", "distributor", "pharmacy", "hospital"), strict=True):
            self.ledger.admit_organisation(party, kind)
        self.ledger.grant_prefix(MAKER, "0614141")
        for lot in ("A", "B"):
            serials = tuple(serial for serial in SERIALS if LOTS[serial] == lot)
            self.ledger.ok(MAKER, "supply.commission", SupplyCommission(GTIN, lot, EXPIRY, serials))
        self.awaiting: list[tuple[bytes, SigningKey, tuple[PackRef, ...]]] = []
        """Shipments not yet received: id, destination, packs."""
        self.recalled: set[str] = set()
        self.dispensed: list[str] = []

    def holder(self, serial: str) -> SigningKey:
        return next(party for party in PARTIES if party.public_key == holder(self.ledger, ref(serial)))

    @rule(
        party=PARTY,
        serials=st.lists(st.sampled_from(SERIALS), min_size=1, max_size=3, unique=True),
        onwards=st.integers(0, 3),
    )
    def ship(self, party: SigningKey | None, serials: list[str], onwards: int) -> None:
        """Ship to the party ``onwards`` places after the first pack's holder (0: itself);
        the plausible sender ships only the packs it holds."""
        sender = self.holder(serials[0])
        destination = PARTIES[(PARTIES.index(sender) + onwards) % len(PARTIES)]
        if party is None:
            serials = [serial for serial in serials if self.holder(serial) == sender]
        packs = tuple(ref(serial) for serial in serials)
        result = self.ledger.run(party or sender, "supply.ship", SupplyShip(destination.public_key, packs))
        if result.ok:
            self.awaiting.append((result.tx_id, destination, packs))

    @precondition(lambda self: self.awaiting)
    @rule(party=PARTY, back=st.integers(0, 3), lost=LOST)
    def receive(self, party: SigningKey | None, back: int, lost: list[bool]) -> None:
        """Receive the latest shipment awaited but ``back``; ``lost`` says which packs did not arrive."""
        shipment_id, destination, packs = self.awaiting[-1 - back % len(self.awaiting)]
        arrived = tuple(pack for pack, gone in zip(packs, lost, strict=False) if not gone)
        missing = tuple(pack for pack in packs if pack not in arrived)
        if self.ledger.run(party or destination, "supply.receive", SupplyReceive(shipment_id, arrived, missing)).ok:
            self.awaiting = [shipment for shipment in self.awaiting if shipment[0] != shipment_id]

    @rule(party=PARTY, serial=st.sampled_from(SERIALS))
    def dispense(self, party: SigningKey | None, serial: str) -> None:
        """The plausible dispenser is a pharmacy or hospital holding the pack (or another it holds)."""
        at_dispensers = [other for other in SERIALS if self.holder(other) in (PHARMACY, HOSPITAL)]
        if party is None and at_dispensers and serial not in at_dispensers:
            serial = at_dispensers[SERIALS.index(serial) % len(at_dispensers)]
        if self.ledger.run(party or self.holder(serial), "supply.dispense", SupplyDispense((ref(serial),))).ok:
            assert serial not in self.recalled, "a recalled pack was dispensed"
            self.dispensed.append(serial)

    @rule(party=PARTY, what=st.sampled_from(("lot A", "P0")))  # lot B stays free to travel
    def recall(self, party: SigningKey | None, what: str) -> None:
        lot = what[4:] if what.startswith("lot ") else None
        body = SupplyRecall(GTIN, lot, () if lot else (what,), "property test")
        if self.ledger.run(party or MAKER, "supply.recall", body).ok:
            self.recalled.update(serial for serial in SERIALS if what in (serial, f"lot {LOTS[serial]}"))

    @invariant()
    def custody_is_continuous(self) -> None:
        for serial in SERIALS:
            events = trace(self.ledger.state, GTIN, serial)
            custodian, shipper = events[0].organisation, None
            for event in events:
                if event.kind == "ship":
                    assert event.organisation == custodian, "only the holder ships"
                    shipper = event.organisation
                elif event.kind in ("receive", "missing"):
                    assert event.party == shipper
                    custodian = event.organisation if event.kind == "receive" else custodian
                elif event.kind == "dispense":
                    assert event.organisation == custodian, "only the holder dispenses"
            assert holder(self.ledger, ref(serial)) == custodian, "the holder is the last receiver"
            assert [event.kind for event in events].count("dispense") <= 1

    @invariant()
    def no_pack_is_dispensed_twice(self) -> None:
        assert len(self.dispensed) == len(set(self.dispensed))


Custody.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
test_custody_is_continuous_and_no_pack_is_dispensed_twice_or_after_a_recall = Custody.TestCase


# -- the whole story ---------------------------------------------------------------------------------------------------


def test_from_manufacturer_to_patient_with_a_counterfeit_caught_on_the_way(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "PACK-0001", "PACK-0002", lot="LOT-42")
    deliver(ledger, MAKER, DISTRIBUTOR, packs)
    deliver(ledger, DISTRIBUTOR, PHARMACY, packs[:1])

    verdict = verify(ledger.state, GTIN, "PACK-0001", ledger.time_ms, PHARMACY.public_key)
    assert verdict.status == "genuine-dispensable" and verdict.dispensable and verdict.expiry == EXPIRY
    ledger.ok(PHARMACY, "supply.verify", scan("PACK-0001", lot="LOT-42"))
    ledger.ok(PHARMACY, "supply.dispense", SupplyDispense(packs[:1]))
    again = verify(ledger.state, GTIN, "PACK-0001", ledger.time_ms, PHARMACY.public_key)
    assert again.status == "already-dispensed" and not again.dispensable

    ledger.ok(PHARMACY, "supply.verify", scan("PACK-9999"))
    assert [(alert.kind, alert.serial) for alert in alerts(ledger.state)] == [
        ("unknown-suspect-counterfeit", "PACK-9999")
    ]

    story = [(event.kind, event.organisation) for event in trace(ledger.state, GTIN, "PACK-0001")]
    assert story == [
        ("commission", MAKER.public_key),
        ("ship", MAKER.public_key),
        ("receive", DISTRIBUTOR.public_key),
        ("ship", DISTRIBUTOR.public_key),
        ("receive", PHARMACY.public_key),
        ("scan", PHARMACY.public_key),
        ("dispense", PHARMACY.public_key),
    ]
    heights = [event.height for event in trace(ledger.state, GTIN, "PACK-0001")]
    assert heights == sorted(heights)


def test_a_lots_packs_are_found_where_they_are_now(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2", "S3", "S4", lot="L1")
    commission(ledger, "S9", lot="L1/X")  # "/" is a GS1 character: its own lot, not L1's
    deliver(ledger, MAKER, DISTRIBUTOR, packs[:2])
    ship(ledger, MAKER, PHARMACY, packs[2:3])
    found, more = lot_packs(ledger.state, GTIN, "L1")
    assert not more and [(pack.serial, pack.holder, pack.status) for pack in found] == [
        ("S1", DISTRIBUTOR.public_key, "held"),
        ("S2", DISTRIBUTOR.public_key, "held"),
        ("S3", MAKER.public_key, "in-transit"),
        ("S4", MAKER.public_key, "held"),
    ]
    first, more = lot_packs(ledger.state, GTIN, "L1", limit=2)
    assert more and [pack.serial for pack in first] == ["S1", "S2"]
    assert [pack.serial for pack in lot_packs(ledger.state, GTIN, "L1/X")[0]] == ["S9"]
    assert lot_packs(ledger.state, GTIN, "L2") == ([], False)
    with pytest.raises(ValueError, match="lot 'L 1'"):
        lot_packs(ledger.state, GTIN, "L 1")
