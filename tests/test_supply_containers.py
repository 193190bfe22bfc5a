"""Aggregation: packs in cases in pallets (SSCC), shipped and received whole, unpacked,
and every way of abusing it refused without changing anything."""

from __future__ import annotations

import pytest

from ledger_harness import LedgerHarness
from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.supply import (
    PackRef,
    SupplyAggregate,
    SupplyDecommission,
    SupplyDisaggregate,
    SupplyDispense,
    SupplyRecall,
    SupplyReceive,
    SupplyShip,
    alerts,
    container,
    container_history,
    container_of,
    gs1_check_digit,
    trace,
)
from p2pmed.ledger.errors import RejectReason
from test_supply import DISTRIBUTOR, GTIN, HOSPITAL, MAKER, PHARMACY, STRANGER, admitted, commission, deliver, ship


def sscc(number: int) -> str:
    """An SSCC-18: extension digit 0, company prefix 0614141, serial reference ``number``, check digit."""
    digits = f"00614141{number:09d}"
    return digits + gs1_check_digit(digits)


CASE, CASE_2, PALLET, OTHER = sscc(1), sscc(2), sscc(10), sscc(99)


@pytest.fixture
def ledger() -> LedgerHarness:
    return admitted(LedgerHarness())


def aggregate(ledger: LedgerHarness, parent: str, packs: tuple[PackRef, ...] = (), *containers: str) -> None:
    ledger.ok(MAKER, "supply.aggregate", SupplyAggregate(parent, packs, containers))


def found(ledger: LedgerHarness, sscc_code: str) -> supply.Container:
    result = container(ledger.state, sscc_code)
    assert result is not None
    return result


def palletised(ledger: LedgerHarness) -> tuple[PackRef, ...]:
    """Four packs: two in CASE, two in CASE_2, both cases on PALLET, all at the manufacturer."""
    packs = commission(ledger, "S1", "S2", "S3", "S4")
    aggregate(ledger, CASE, packs[:2])
    aggregate(ledger, CASE_2, packs[2:])
    aggregate(ledger, PALLET, (), CASE, CASE_2)
    return packs


def ship_containers(ledger: LedgerHarness, sender: SigningKey, destination: SigningKey, *ssccs: str) -> bytes:
    result = ledger.run(sender, "supply.ship", SupplyShip(destination.public_key, (), ssccs))
    assert result.ok, result.detail
    return result.tx_id


def pack_state(ledger: LedgerHarness, pack: PackRef) -> supply.Pack:
    result = supply.pack(ledger.state, pack.gtin, pack.serial)
    assert result is not None
    return result


def unchanged(ledger: LedgerHarness) -> dict[str, bytes]:
    """The supply state (a refused transaction still uses its nonce and a block's time)."""
    return {key: value for key, value in ledger.state.data.items() if key.startswith("supply/")}


def test_the_sscc_check_digit_is_checked() -> None:
    assert supply.sscc_problem(CASE) is None
    assert "must be 18 digits" in (supply.sscc_problem(CASE[:-1]) or "")
    wrong = CASE[:-1] + str((int(CASE[-1]) + 1) % 10)
    assert f"expected {CASE[-1]}" in (supply.sscc_problem(wrong) or "")


# -- packing ----------------------------------------------------------------------------------------


def test_packs_go_into_cases_and_cases_onto_a_pallet(ledger: LedgerHarness) -> None:
    packs = palletised(ledger)
    pallet = found(ledger, PALLET)
    assert (pallet.holder, pallet.status, pallet.parent, pallet.containers, pallet.items, pallet.depth) == (
        MAKER.public_key,
        "held",
        None,
        (CASE, CASE_2),
        7,  # itself, two cases, four packs
        2,
    )
    assert found(ledger, CASE).parent == PALLET and found(ledger, CASE).packs == packs[:2]
    assert [container_of(ledger.state, pack) for pack in packs] == [CASE, CASE, CASE_2, CASE_2]
    (packing,) = container_history(ledger.state, PALLET)
    assert (packing.kind, packing.organisation, packing.containers) == ("aggregate", MAKER.public_key, (CASE, CASE_2))


def test_a_container_is_filled_in_several_aggregations(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    aggregate(ledger, CASE, packs[:1])
    aggregate(ledger, CASE, packs[1:])
    assert found(ledger, CASE).packs == packs and found(ledger, CASE).items == 3
    assert [event.packs for event in container_history(ledger.state, CASE)] == [packs[:1], packs[1:]]


def test_only_the_holder_of_the_packs_and_the_container_packs(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    deliver(ledger, MAKER, DISTRIBUTOR, packs[1:])
    detail = ledger.refused(
        DISTRIBUTOR, "supply.aggregate", SupplyAggregate(CASE, packs[:1], ()), RejectReason.NOT_AUTHORISED
    )
    assert "(21)S1 is held by" in detail and "only its holder can pack it" in detail
    assert container(ledger.state, CASE) is None, "the refused aggregation opened no container"
    aggregate(ledger, CASE, packs[:1])
    detail = ledger.refused(
        DISTRIBUTOR, "supply.aggregate", SupplyAggregate(CASE, packs[1:], ()), RejectReason.NOT_AUTHORISED
    )
    assert f"container (00){CASE} is held by" in detail
    assert "organisation in force" in ledger.refused(
        STRANGER, "supply.aggregate", SupplyAggregate(OTHER, packs[1:], ()), RejectReason.NOT_AUTHORISED
    )
    assert container_of(ledger.state, packs[1]) is None


def test_a_pack_is_in_one_container_once(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    twice = SupplyAggregate(CASE, (packs[0], packs[0]), ())
    assert "listed twice" in ledger.refused(MAKER, "supply.aggregate", twice, RejectReason.INVALID)
    aggregate(ledger, CASE, packs[:1])
    before = unchanged(ledger)
    again = SupplyAggregate(CASE, packs, ())
    assert f"(21)S1 is packed in container (00){CASE}" in ledger.refused(
        MAKER, "supply.aggregate", again, RejectReason.INVALID
    )
    elsewhere = SupplyAggregate(CASE_2, packs, ())
    assert f"(21)S1 is packed in container (00){CASE}" in ledger.refused(
        MAKER, "supply.aggregate", elsewhere, RejectReason.INVALID
    )
    assert unchanged(ledger) == before, "the refused aggregations changed nothing"


def test_a_container_never_holds_itself_nor_its_own_holder(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    aggregate(ledger, CASE, packs[:1])
    aggregate(ledger, CASE_2, packs[1:])
    itself = SupplyAggregate(CASE, (), (CASE,))
    assert "cannot be packed into itself" in ledger.refused(MAKER, "supply.aggregate", itself, RejectReason.INVALID)
    aggregate(ledger, PALLET, (), CASE)
    cycle = SupplyAggregate(CASE, (), (PALLET,))
    detail = ledger.refused(MAKER, "supply.aggregate", cycle, RejectReason.INVALID)
    assert f"container (00){CASE} is packed in container (00){PALLET}" in detail
    twice = SupplyAggregate(OTHER, (), (CASE,))
    assert "is packed in" in ledger.refused(MAKER, "supply.aggregate", twice, RejectReason.INVALID)
    duplicate = SupplyAggregate(OTHER, (), (CASE_2, CASE_2))
    assert "a container is listed twice" in ledger.refused(MAKER, "supply.aggregate", duplicate, RejectReason.INVALID)
    assert found(ledger, PALLET).containers == (CASE,) and found(ledger, CASE_2).parent is None


def test_a_container_holds_a_bounded_number_of_items(ledger: LedgerHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supply.limits, "ITEMS_PER_CONTAINER_MAX", 4)
    packs = commission(ledger, "S1", "S2", "S3", "S4", "S5")
    detail = ledger.refused(MAKER, "supply.aggregate", SupplyAggregate(CASE, packs[:4], ()), RejectReason.INVALID)
    assert "would hold 4 items" in detail and "at most 4 items" in detail
    aggregate(ledger, CASE, packs[:3])  # itself and three packs
    aggregate(ledger, CASE_2, packs[3:4])
    over = SupplyAggregate(PALLET, (), (CASE, CASE_2))
    assert "would hold 6 items" in ledger.refused(MAKER, "supply.aggregate", over, RejectReason.INVALID)
    assert container(ledger.state, PALLET) is None and found(ledger, CASE).parent is None


def test_containers_nest_a_bounded_number_of_levels(ledger: LedgerHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supply.limits, "CONTAINER_DEPTH_MAX", 2)
    packs = commission(ledger, "S1")
    aggregate(ledger, CASE, packs)
    aggregate(ledger, PALLET, (), CASE)
    deeper = SupplyAggregate(OTHER, (), (PALLET,))
    assert "would nest 3 levels of containers; at most 2" in ledger.refused(
        MAKER, "supply.aggregate", deeper, RejectReason.INVALID
    )


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (SupplyAggregate("123", (PackRef(GTIN, "S1"),), ()), "must be 18 digits"),
        (SupplyAggregate(CASE[:-1] + "0", (PackRef(GTIN, "S1"),), ()), "wrong check digit"),
        (SupplyAggregate(CASE, (), ()), "list the packs or containers"),
        (SupplyAggregate(CASE, (), ("12",)), "must be 18 digits"),
        (SupplyAggregate(CASE, (PackRef(GTIN, "NOPE"),), ()), "was never commissioned"),
        (SupplyAggregate(CASE, (), (OTHER,)), f"no container (00){OTHER} was ever packed"),
    ],
)
def test_a_malformed_aggregation_is_refused(ledger: LedgerHarness, body: SupplyAggregate, fragment: str) -> None:
    commission(ledger, "S1")
    assert fragment in ledger.refused(MAKER, "supply.aggregate", body, RejectReason.INVALID)


def test_a_packed_pack_moves_only_with_its_container(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    deliver(ledger, MAKER, PHARMACY, packs)
    ledger.ok(PHARMACY, "supply.aggregate", SupplyAggregate(CASE, packs, ()))
    for tx_type, body, action in (
        ("supply.dispense", SupplyDispense(packs[:1]), "dispense"),
        ("supply.decommission", SupplyDecommission(packs[:1], "damaged"), "decommission"),
        ("supply.ship", SupplyShip(HOSPITAL.public_key, packs[:1]), "ship"),
    ):
        detail = ledger.refused(PHARMACY, tx_type, body, RejectReason.INVALID)
        assert f"is packed in container (00){CASE}: disaggregate it before you {action} it" in detail
    ledger.ok(PHARMACY, "supply.disaggregate", SupplyDisaggregate(CASE, packs[:1], ()))
    ledger.ok(PHARMACY, "supply.dispense", SupplyDispense(packs[:1]))
    assert container_of(ledger.state, packs[0]) is None and container_of(ledger.state, packs[1]) == CASE


# -- shipping and receiving -----------------------------------------------------------------------------


def test_shipping_a_pallet_ships_every_pack_and_receiving_it_receives_them(ledger: LedgerHarness) -> None:
    packs = palletised(ledger)
    shipment_id = ship_containers(ledger, MAKER, DISTRIBUTOR, PALLET)
    assert [pack_state(ledger, pack).status for pack in packs] == ["in-transit"] * 4
    assert [supply.shipment_of(ledger.state, pack) for pack in packs] == [shipment_id] * 4
    assert {found(ledger, code).status for code in (CASE, CASE_2, PALLET)} == {"in-transit"}
    ledger.ok(DISTRIBUTOR, "supply.receive", SupplyReceive(shipment_id, (), (), (PALLET,), ()))
    for pack in packs:
        events = trace(ledger.state, GTIN, pack.serial)
        assert [(event.kind, event.organisation) for event in events[1:]] == [
            ("ship", MAKER.public_key),
            ("receive", DISTRIBUTOR.public_key),
        ]
        assert f"in container (00){PALLET}" in events[2].detail
        assert pack_state(ledger, pack).holder == DISTRIBUTOR.public_key
    assert {(found(ledger, code).holder, found(ledger, code).status) for code in (CASE, CASE_2, PALLET)} == {
        (DISTRIBUTOR.public_key, "held")
    }
    assert [event.kind for event in container_history(ledger.state, CASE)] == ["aggregate", "ship", "receive"]
    sent = supply.shipment(ledger.state, shipment_id)
    assert sent is not None and sent.containers == (PALLET,) and sent.packs == ()


def test_the_receiver_unpacks_a_received_pallet_and_dispenses(ledger: LedgerHarness) -> None:
    packs = palletised(ledger)
    shipment_id = ship_containers(ledger, MAKER, PHARMACY, PALLET)
    ledger.ok(PHARMACY, "supply.receive", SupplyReceive(shipment_id, (), (), (PALLET,), ()))
    assert "packed in container" in ledger.refused(
        PHARMACY, "supply.disaggregate", SupplyDisaggregate(CASE, (), ()), RejectReason.INVALID
    ), "a case on a pallet is unpacked once it is off the pallet"
    ledger.ok(PHARMACY, "supply.disaggregate", SupplyDisaggregate(PALLET, (), ()))
    ledger.ok(PHARMACY, "supply.disaggregate", SupplyDisaggregate(CASE, (), ()))
    ledger.ok(PHARMACY, "supply.dispense", SupplyDispense(packs[:2]))
    assert found(ledger, PALLET).status == "emptied" and found(ledger, CASE).status == "emptied"
    assert found(ledger, CASE_2).parent is None and found(ledger, CASE_2).holder == PHARMACY.public_key


def test_a_pallet_that_did_not_arrive_makes_every_pack_missing(ledger: LedgerHarness) -> None:
    palletised(ledger)
    loose = commission(ledger, "S5")
    shipment_id = ship(ledger, MAKER, DISTRIBUTOR, loose)
    pallet_shipment = ship_containers(ledger, MAKER, DISTRIBUTOR, PALLET)
    ledger.ok(DISTRIBUTOR, "supply.receive", SupplyReceive(shipment_id, loose, ()))
    ledger.ok(DISTRIBUTOR, "supply.receive", SupplyReceive(pallet_shipment, (), (), (), (PALLET,)))
    assert [alert.serial for alert in alerts(ledger.state)] == ["S1", "S2", "S3", "S4"]
    assert f"in container (00){PALLET}" in alerts(ledger.state)[0].detail
    assert found(ledger, PALLET).status == "missing"
    assert supply.verify(ledger.state, GTIN, "S1", ledger.time_ms).status == "missing-in-transit"
    body = SupplyAggregate(PALLET, loose, ())
    assert "was reported missing in transit" in ledger.refused(
        DISTRIBUTOR, "supply.aggregate", body, RejectReason.INVALID
    )


@pytest.mark.parametrize(
    ("arrived", "missing", "fragment"),
    [
        ((), (), f"mismatch: container (00){PALLET} of the shipment is not listed"),
        ((PALLET, OTHER), (), f"mismatch: container (00){OTHER} is not in shipment"),
        ((PALLET,), (PALLET,), "is listed both as arrived and as missing"),
        ((PALLET, PALLET), (), "a container is listed twice"),
    ],
)
def test_a_receipt_lists_every_container_of_the_shipment(
    ledger: LedgerHarness, arrived: tuple[str, ...], missing: tuple[str, ...], fragment: str
) -> None:
    palletised(ledger)
    shipment_id = ship_containers(ledger, MAKER, DISTRIBUTOR, PALLET)
    before = unchanged(ledger)
    body = SupplyReceive(shipment_id, (), (), arrived, missing)
    assert fragment in ledger.refused(DISTRIBUTOR, "supply.receive", body, RejectReason.INVALID)
    assert unchanged(ledger) == before


def test_only_the_holder_ships_a_container_and_only_whole(ledger: LedgerHarness) -> None:
    palletised(ledger)
    body = SupplyShip(PHARMACY.public_key, (), (PALLET,))
    assert "only its holder can ship it" in ledger.refused(
        DISTRIBUTOR, "supply.ship", body, RejectReason.NOT_AUTHORISED
    )
    case = SupplyShip(PHARMACY.public_key, (), (CASE,))
    assert f"is packed in container (00){PALLET}: take it out before you ship it" in ledger.refused(
        MAKER, "supply.ship", case, RejectReason.INVALID
    )
    shipment_id = ship_containers(ledger, MAKER, PHARMACY, PALLET)
    assert f"in transit in shipment {shipment_id.hex()}" in ledger.refused(
        MAKER, "supply.ship", SupplyShip(HOSPITAL.public_key, (), (PALLET,)), RejectReason.INVALID
    )


def test_a_shipment_moves_a_bounded_number_of_items(ledger: LedgerHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    palletised(ledger)  # seven items
    loose = commission(ledger, "S5")
    monkeypatch.setattr(supply.limits, "ITEMS_MOVED_PER_TX_MAX", 7)
    body = SupplyShip(PHARMACY.public_key, loose, (PALLET,))
    assert "this would ship 8 items" in ledger.refused(MAKER, "supply.ship", body, RejectReason.INVALID)
    ship_containers(ledger, MAKER, PHARMACY, PALLET)


def test_a_recalled_pack_in_a_container_holds_the_container_back(ledger: LedgerHarness) -> None:
    packs = palletised(ledger)
    shipment_id = ship_containers(ledger, MAKER, DISTRIBUTOR, PALLET)
    ledger.ok(DISTRIBUTOR, "supply.receive", SupplyReceive(shipment_id, (), (), (PALLET,), ()))
    ledger.ok(MAKER, "supply.recall", SupplyRecall(GTIN, None, (packs[3].serial,), "mislabelled"))
    before = unchanged(ledger)
    detail = ledger.refused(
        DISTRIBUTOR, "supply.ship", SupplyShip(PHARMACY.public_key, (), (PALLET,)), RejectReason.INVALID
    )
    assert "(21)S4 is recalled: it may only be shipped back to its manufacturer" in detail
    assert unchanged(ledger) == before, "no pack of the refused pallet moved"
    ship_containers(ledger, DISTRIBUTOR, MAKER, PALLET)


# -- unpacking ----------------------------------------------------------------------------------------------


def test_unpacking_is_for_the_holder_and_for_what_is_inside(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2", "S3")
    aggregate(ledger, CASE, packs[:2])
    assert "only its holder can unpack it" in ledger.refused(
        DISTRIBUTOR, "supply.disaggregate", SupplyDisaggregate(CASE, (), ()), RejectReason.NOT_AUTHORISED
    )
    assert "(21)S3 is not packed in" in ledger.refused(
        MAKER, "supply.disaggregate", SupplyDisaggregate(CASE, packs[2:], ()), RejectReason.INVALID
    )
    assert f"container (00){OTHER} is not packed in" in ledger.refused(
        MAKER, "supply.disaggregate", SupplyDisaggregate(CASE, (), (OTHER,)), RejectReason.INVALID
    )
    assert f"no container (00){OTHER} was ever packed" in ledger.refused(
        MAKER, "supply.disaggregate", SupplyDisaggregate(OTHER, (), ()), RejectReason.INVALID
    )
    ledger.ok(MAKER, "supply.disaggregate", SupplyDisaggregate(CASE, packs[:1], ()))
    assert found(ledger, CASE).packs == packs[1:2] and found(ledger, CASE).items == 2
    ship_containers(ledger, MAKER, DISTRIBUTOR, CASE)
    assert "in transit" in ledger.refused(
        MAKER, "supply.disaggregate", SupplyDisaggregate(CASE, (), ()), RejectReason.INVALID
    )


def test_an_emptied_sscc_is_not_reused(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    aggregate(ledger, CASE, packs[:1])
    ledger.ok(MAKER, "supply.disaggregate", SupplyDisaggregate(CASE, packs[:1], ()))
    assert found(ledger, CASE).status == "emptied"
    assert "an SSCC is not reused" in ledger.refused(
        MAKER, "supply.aggregate", SupplyAggregate(CASE, packs[1:], ()), RejectReason.INVALID
    )
    assert [event.kind for event in container_history(ledger.state, CASE)] == ["aggregate", "disaggregate"]


def test_unpacking_a_pallet_updates_its_depth_and_items(ledger: LedgerHarness) -> None:
    packs = palletised(ledger)
    extra = commission(ledger, "S5")
    aggregate(ledger, PALLET, extra)
    ledger.ok(MAKER, "supply.disaggregate", SupplyDisaggregate(PALLET, (), (CASE, CASE_2)))
    assert (found(ledger, PALLET).items, found(ledger, PALLET).depth, found(ledger, PALLET).containers) == (2, 1, ())
    assert found(ledger, CASE).parent is None and container_of(ledger.state, packs[0]) == CASE


def test_a_containers_history_is_bounded(ledger: LedgerHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supply.limits, "CONTAINER_EVENTS_MAX", 3)
    packs = commission(ledger, "S1", "S2", "S3", "S4")
    for pack in packs[:3]:
        aggregate(ledger, CASE, (pack,))
    assert "has 3 events, the most its history holds" in ledger.refused(
        MAKER, "supply.aggregate", SupplyAggregate(CASE, packs[3:], ()), RejectReason.INVALID
    )
    assert container_of(ledger.state, packs[3]) is None
