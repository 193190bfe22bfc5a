"""Suspect products: quarantine, investigation, clearance or an illegitimate
determination and its 24-hour notice, deadlines in ledger time, and every way around
a quarantine refused."""

from __future__ import annotations

import pytest

from ledger_harness import LedgerHarness
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.supply import (
    DAY_MS,
    PackRef,
    SupplyAggregate,
    SupplyDecommission,
    SupplyDispense,
    SupplyShip,
    SuspectClear,
    SuspectIllegitimate,
    SuspectInvestigate,
    SuspectNotify,
    SuspectQuarantine,
    alerts,
    overdue,
    quarantine_of,
    suspect_case,
    suspect_cases,
    verify,
)
from p2pmed.ledger.errors import RejectReason
from test_supply import DISTRIBUTOR, GTIN, HOSPITAL, MAKER, PHARMACY, STRANGER, admitted, commission, deliver
from test_supply_containers import CASE


@pytest.fixture
def ledger() -> LedgerHarness:
    return admitted(LedgerHarness())


def at_pharmacy(ledger: LedgerHarness) -> tuple[PackRef, ...]:
    packs = commission(ledger, "S1", "S2", "S3")
    deliver(ledger, MAKER, PHARMACY, packs)
    return packs


def quarantine(ledger: LedgerHarness, *packs: PackRef) -> bytes:
    result = ledger.run(PHARMACY, "supply.suspect.quarantine", SuspectQuarantine(packs, "seal broken"))
    assert result.ok, result.detail
    return result.tx_id


def case_of(ledger: LedgerHarness, case_id: bytes) -> supply.SuspectCase:
    found = suspect_case(ledger.state, case_id)
    assert found is not None
    return found


def test_an_illegitimate_product_goes_from_quarantine_to_notice(ledger: LedgerHarness) -> None:
    packs = at_pharmacy(ledger)
    case_id = quarantine(ledger, *packs[:2])
    assert (case_of(ledger, case_id).status, quarantine_of(ledger.state, packs[0])) == ("quarantined", case_id)
    assert verify(ledger.state, GTIN, "S1", ledger.time_ms).status == "quarantined-suspect"
    ledger.ok(PHARMACY, "supply.suspect.investigate", SuspectInvestigate(case_id))
    ledger.ok(PHARMACY, "supply.suspect.illegitimate", SuspectIllegitimate(case_id, "counterfeit", "wrong hologram"))
    assert [(alert.kind, alert.serial) for alert in alerts(ledger.state)] == [
        ("illegitimate-counterfeit", "S1"),
        ("illegitimate-counterfeit", "S2"),
    ]
    assert case_of(ledger, case_id).due_ms == ledger.time_ms + 24 * 3_600_000
    partners = (DISTRIBUTOR.public_key, MAKER.public_key)
    ledger.ok(PHARMACY, "supply.suspect.notify", SuspectNotify(case_id, partners))
    closed = case_of(ledger, case_id)
    assert (closed.status, closed.due_ms, closed.partners, closed.classification) == (
        "notified",
        None,
        partners,
        "counterfeit",
    )
    assert closed.notified is not None and not closed.notified.late
    assert quarantine_of(ledger.state, packs[0]) == case_id, "an illegitimate product stays quarantined"
    ledger.ok(PHARMACY, "supply.decommission", SupplyDecommission(packs[:2], "destroyed"))
    assert [case.id for case in suspect_cases(ledger.state)] == [case_id]


def test_a_cleared_case_releases_its_packs(ledger: LedgerHarness) -> None:
    packs = at_pharmacy(ledger)
    case_id = quarantine(ledger, *packs[:1])
    ledger.ok(PHARMACY, "supply.suspect.investigate", SuspectInvestigate(case_id))
    ledger.ok(PHARMACY, "supply.suspect.clear", SuspectClear(case_id, "the maker verified it"))
    assert quarantine_of(ledger.state, packs[0]) is None and case_of(ledger, case_id).status == "cleared"
    ledger.ok(PHARMACY, "supply.dispense", SupplyDispense(packs[:1]))


def test_a_quarantined_pack_is_not_shipped_packed_or_dispensed(ledger: LedgerHarness) -> None:
    packs = at_pharmacy(ledger)
    case_id = quarantine(ledger, *packs[:1])
    for tx_type, body, action in (
        ("supply.dispense", SupplyDispense(packs[:1]), "dispense"),
        ("supply.ship", SupplyShip(HOSPITAL.public_key, packs), "ship"),
        ("supply.ship", SupplyShip(MAKER.public_key, packs[:1]), "ship"),
        ("supply.aggregate", SupplyAggregate(CASE, packs, ()), "pack"),
        ("supply.suspect.quarantine", SuspectQuarantine(packs[:1], "again"), "quarantine"),
    ):
        detail = ledger.refused(PHARMACY, tx_type, body, RejectReason.INVALID)
        assert f"is quarantined as a suspect product (case {case_id.hex()}): nobody can {action} it" in detail
    assert supply.container(ledger.state, CASE) is None
    assert supply.pack(ledger.state, GTIN, "S2").status == "held"  # type: ignore[union-attr]


def test_only_the_holder_quarantines_loose_packs(ledger: LedgerHarness) -> None:
    packs = at_pharmacy(ledger)
    body = SuspectQuarantine(packs[:1], "odd")
    assert "only its holder can quarantine it" in ledger.refused(
        DISTRIBUTOR, "supply.suspect.quarantine", body, RejectReason.NOT_AUTHORISED
    )
    assert "organisation in force" in ledger.refused(
        STRANGER, "supply.suspect.quarantine", body, RejectReason.NOT_AUTHORISED
    )
    ledger.ok(PHARMACY, "supply.aggregate", SupplyAggregate(CASE, packs[1:2], ()))
    packed = SuspectQuarantine(packs[1:2], "odd")
    assert "is packed in container" in ledger.refused(
        PHARMACY, "supply.suspect.quarantine", packed, RejectReason.INVALID
    )
    assert "the reason must be" in ledger.refused(
        PHARMACY, "supply.suspect.quarantine", SuspectQuarantine(packs[:1], ""), RejectReason.INVALID
    )


def test_only_the_case_owner_takes_its_steps_in_order(ledger: LedgerHarness) -> None:
    packs = at_pharmacy(ledger)
    case_id = quarantine(ledger, *packs[:1])
    for party in (MAKER, DISTRIBUTOR):
        assert "only it takes the case's steps" in ledger.refused(
            party, "supply.suspect.clear", SuspectClear(case_id, "fine"), RejectReason.NOT_AUTHORISED
        )
    assert "belongs to" in ledger.refused(
        MAKER, "supply.suspect.investigate", SuspectInvestigate(case_id), RejectReason.NOT_AUTHORISED
    )
    assert "organisation in force" in ledger.refused(
        STRANGER, "supply.suspect.investigate", SuspectInvestigate(case_id), RejectReason.NOT_AUTHORISED
    )
    assert "is quarantined; to be cleared it must be investigating" in ledger.refused(
        PHARMACY, "supply.suspect.clear", SuspectClear(case_id, "skip"), RejectReason.INVALID
    )
    ledger.ok(PHARMACY, "supply.suspect.investigate", SuspectInvestigate(case_id))
    ledger.ok(PHARMACY, "supply.suspect.illegitimate", SuspectIllegitimate(case_id, "diverted", "grey market"))
    assert "is illegitimate; to be cleared it must be investigating" in ledger.refused(
        PHARMACY, "supply.suspect.clear", SuspectClear(case_id, "oops"), RejectReason.INVALID
    )
    assert quarantine_of(ledger.state, packs[0]) == case_id


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (SuspectIllegitimate(b"x", "counterfeit", "d"), "32-byte id"),
        (SuspectIllegitimate(bytes(32), "counterfeit", "d"), "no suspect case has id"),
        (SuspectIllegitimate(None, "fake", "d"), "unknown classification 'fake'"),
        (SuspectIllegitimate(None, "stolen", ""), "the description must be"),
    ],
)
def test_a_malformed_determination_is_refused(ledger: LedgerHarness, body: SuspectIllegitimate, fragment: str) -> None:
    case_id = quarantine(ledger, *at_pharmacy(ledger)[:1])
    ledger.ok(PHARMACY, "supply.suspect.investigate", SuspectInvestigate(case_id))
    given = body if body.case is not None else SuspectIllegitimate(case_id, body.classification, body.description)
    assert fragment in ledger.refused(PHARMACY, "supply.suspect.illegitimate", given, RejectReason.INVALID)
    assert case_of(ledger, case_id).status == "investigating"


def test_a_notice_names_other_organisations_in_force(ledger: LedgerHarness) -> None:
    case_id = quarantine(ledger, *at_pharmacy(ledger)[:1])
    ledger.ok(PHARMACY, "supply.suspect.investigate", SuspectInvestigate(case_id))
    assert "is investigating; to be notified it must be illegitimate" in ledger.refused(
        PHARMACY, "supply.suspect.notify", SuspectNotify(case_id, (MAKER.public_key,)), RejectReason.INVALID
    )
    ledger.ok(PHARMACY, "supply.suspect.illegitimate", SuspectIllegitimate(case_id, "stolen", "from a truck"))
    for partners, fragment in (
        ((), "name 1..64 distinct trading partners"),
        ((MAKER.public_key, MAKER.public_key), "distinct"),
        ((PHARMACY.public_key,), "is not another organisation in force"),
        ((STRANGER.public_key,), "is not another organisation in force"),
    ):
        detail = ledger.refused(
            PHARMACY, "supply.suspect.notify", SuspectNotify(case_id, partners), RejectReason.INVALID
        )
        assert fragment in detail
    assert case_of(ledger, case_id).status == "illegitimate"


def test_overdue_steps_show_at_ledger_time_and_late_steps_are_marked(ledger: LedgerHarness) -> None:
    case_id = quarantine(ledger, *at_pharmacy(ledger)[:1])
    opened = case_of(ledger, case_id)
    assert overdue(opened, ledger.time_ms) is None
    assert overdue(opened, opened.quarantined.time_ms + DAY_MS + 1) == "investigate"
    ledger.time_ms += 2 * DAY_MS
    ledger.ok(PHARMACY, "supply.suspect.investigate", SuspectInvestigate(case_id))
    investigating = case_of(ledger, case_id)
    assert investigating.investigated is not None and investigating.investigated.late
    assert overdue(investigating, ledger.time_ms) is None
    ledger.ok(PHARMACY, "supply.suspect.illegitimate", SuspectIllegitimate(case_id, "counterfeit", "fake"))
    determined = case_of(ledger, case_id)
    assert determined.determined is not None and not determined.determined.late
    assert overdue(determined, ledger.time_ms + 24 * 3_600_000 + 1) == "notify"
    ledger.time_ms += 25 * 3_600_000
    ledger.ok(PHARMACY, "supply.suspect.notify", SuspectNotify(case_id, (MAKER.public_key,)))
    notified = case_of(ledger, case_id)
    assert notified.notified is not None and notified.notified.late, "a notice after 24 hours is recorded as late"
    assert overdue(notified, ledger.time_ms + 100 * DAY_MS) is None
