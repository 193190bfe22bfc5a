"""Saleable returns: a pack back at an organisation that held it before is resold (shipped or
dispensed) only after that organisation verifies its four elements against the ledger."""

from __future__ import annotations

import pytest

from ledger_harness import LedgerHarness
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.supply import SupplyDecommission, SupplyDispense, SupplyVerify
from p2pmed.ledger.errors import RejectReason
from test_supply import DISTRIBUTOR, EXPIRY, MAKER, PHARMACY, admitted, commission, deliver, scan


@pytest.fixture
def ledger() -> LedgerHarness:
    return admitted(LedgerHarness())


def test_a_returned_pack_is_shipped_again_only_after_its_receiver_verifies_it(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1", "S2")
    deliver(ledger, MAKER, DISTRIBUTOR, packs)
    deliver(ledger, DISTRIBUTOR, PHARMACY, packs)
    deliver(ledger, PHARMACY, DISTRIBUTOR, packs)  # unsold stock back at the wholesaler: a return
    assert supply.pending_return(ledger.state, packs[0]) is not None
    ship_on = supply.SupplyShip(PHARMACY.public_key, packs[:1])
    detail = ledger.refused(DISTRIBUTOR, "supply.ship", ship_on, RejectReason.INVALID)
    assert "was returned" in detail and "verify it before you ship it again" in detail
    ledger.ok(PHARMACY, "supply.verify", scan("S1"))  # not the holder's scan: settles nothing
    ledger.ok(DISTRIBUTOR, "supply.verify", scan("S1", lot="L9"))  # a copied serial's lot: a mismatch
    ledger.refused(DISTRIBUTOR, "supply.ship", ship_on, RejectReason.INVALID)
    ledger.ok(DISTRIBUTOR, "supply.verify", scan("S1"))
    assert supply.pending_return(ledger.state, packs[0]) is None
    ledger.ok(DISTRIBUTOR, "supply.ship", ship_on)
    ledger.ok(DISTRIBUTOR, "supply.decommission", SupplyDecommission(packs[1:], "damaged"))  # unverified: destroyed


def test_a_returned_pack_is_dispensed_only_after_verification(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1")
    deliver(ledger, MAKER, PHARMACY, packs)
    deliver(ledger, PHARMACY, DISTRIBUTOR, packs)
    deliver(ledger, DISTRIBUTOR, PHARMACY, packs)  # back at the pharmacy that held it
    detail = ledger.refused(PHARMACY, "supply.dispense", SupplyDispense(packs), RejectReason.INVALID)
    assert "verify it before you dispense it again" in detail
    ledger.ok(PHARMACY, "supply.verify", SupplyVerify(packs[0].gtin, "S1", "L1", EXPIRY))
    ledger.ok(PHARMACY, "supply.dispense", SupplyDispense(packs))


def test_a_first_receipt_is_not_a_return(ledger: LedgerHarness) -> None:
    packs = commission(ledger, "S1")
    deliver(ledger, MAKER, DISTRIBUTOR, packs)
    deliver(ledger, DISTRIBUTOR, PHARMACY, packs)
    assert supply.pending_return(ledger.state, packs[0]) is None
    ledger.ok(PHARMACY, "supply.dispense", SupplyDispense(packs))
