"""EPCIS 2.0 export of packs' histories: imported back into another ledger it makes the same
history; through the RPC and the CLI, with queries over committed events."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from health_world import GTIN, MAKER, PHARMACY, InProcessClient
from ledger_harness import LedgerHarness, key
from p2pmed.cli.main import cli
from p2pmed.interop.epcis import import_epcis
from p2pmed.interop.epcis_export import PackHistory, export_histories
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.supply import (
    PackRef,
    SupplyCommission,
    SupplyDecommission,
    SupplyDispense,
    SupplyReceive,
    SupplyShip,
    SupplyVerify,
)

BRAND, WHOLESALER, CHEMIST = key("brand"), key("wholesaler"), key("chemist")
PARTIES = {party.public_key: party for party in (BRAND, WHOLESALER, CHEMIST)}
BRAND_GTIN = "10614141073464"
PACKS = tuple(PackRef(BRAND_GTIN, serial) for serial in ("S1", "S2", "S3"))


def world() -> LedgerHarness:
    ledger = LedgerHarness()
    for party, kind in ((BRAND, "manufacturer"), (WHOLESALER, "distributor"), (CHEMIST, "pharmacy")):
        ledger.admit_organisation(party, kind)
    ledger.grant_prefix(BRAND, "0614141")
    return ledger


def deliver(ledger: LedgerHarness, source: Any, destination: Any, packs: tuple[PackRef, ...]) -> None:
    shipped = ledger.run(source, "supply.ship", SupplyShip(destination.public_key, packs))
    assert shipped.ok, shipped.detail
    ledger.ok(destination, "supply.receive", SupplyReceive(shipped.tx_id, packs, ()))


def histories(ledger: LedgerHarness, packs: tuple[PackRef, ...]) -> list[PackHistory]:
    return [PackHistory(pack, "L1", "2031-12-31", supply.trace(ledger.state, pack.gtin, pack.serial)) for pack in packs]


def story() -> LedgerHarness:
    ledger = world()
    ledger.ok(BRAND, "supply.commission", SupplyCommission(BRAND_GTIN, "L1", "2031-12-31", ("S1", "S2", "S3")))
    deliver(ledger, BRAND, WHOLESALER, PACKS)
    deliver(ledger, WHOLESALER, CHEMIST, PACKS[:2])
    ledger.ok(CHEMIST, "supply.dispense", SupplyDispense(PACKS[:1]))
    ledger.ok(CHEMIST, "supply.decommission", SupplyDecommission(PACKS[1:2], "lost"))
    ledger.ok(CHEMIST, "supply.verify", SupplyVerify(BRAND_GTIN, "S1", "L1", "2031-12-31"))
    return ledger


def replay(document: dict[str, Any]) -> LedgerHarness:
    """Import ``document`` into a fresh ledger, each transaction signed by the party that acted."""
    ledger = world()
    tx_ids: list[bytes] = []
    txs = import_epcis(json.dumps(document))
    for tx in txs:
        if tx.shipment_from is not None:
            tx = tx.with_shipment(tx_ids[tx.shipment_from])
        if tx.tx_type == "supply.receive":
            signer = PARTIES[supply.shipment(ledger.state, tx.body.shipment).destination]  # type: ignore[union-attr]
        elif tx.tx_type in ("supply.commission", "supply.epcis.record"):
            signer = BRAND
        else:
            signer = PARTIES[supply.pack(ledger.state, BRAND_GTIN, tx.body.packs[0].serial).holder]  # type: ignore[union-attr]
        result = ledger.run(signer, tx.tx_type, tx.body)
        assert result.ok, f"{tx.event} {tx.tx_type}: {result.detail}"
        tx_ids.append(result.tx_id)
    return ledger


def test_an_exported_history_imports_back_to_the_same_custody() -> None:
    original = story()
    document = export_histories(histories(original, PACKS), original.time_ms)
    assert [event["bizStep"] for event in document["epcisBody"]["eventList"]] == [
        "commissioning",
        "shipping",
        "receiving",
        "shipping",
        "receiving",
        "dispensing",
        "decommissioning",
        "inspecting",
    ], "one event per transaction, whatever the packs it moved"
    copy = replay(json.loads(json.dumps(document)))

    def custody(ledger: LedgerHarness, pack: PackRef) -> list[tuple[str, bytes, bytes | None, str]]:
        events = supply.trace(ledger.state, pack.gtin, pack.serial)
        return [
            (event.kind, event.organisation, event.party, "" if event.kind in ("ship", "receive") else event.detail)
            for event in events
            if event.kind != "scan"
        ]

    for pack in PACKS:
        assert custody(copy, pack) == custody(original, pack)
        assert (
            supply.pack(copy.state, pack.gtin, pack.serial).status
            == supply.pack(  # type: ignore[union-attr]
                original.state, pack.gtin, pack.serial
            ).status
        )
    (scan,), count = supply.pack_records(copy.state, BRAND_GTIN, "S1")
    assert count == 1 and scan.record.biz_step == "inspecting", "a scan comes back as a kept record"


# -- through the RPC and the CLI -------------------------------------------------------------------------


def run(home: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["supply", args[0], "--home", str(home), *args[1:]])


def ok(home: Path, *args: str) -> Any:
    result = run(home, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_cli_exports_a_pack_and_a_lot(client: InProcessClient, home: Path) -> None:
    exported = ok(home, "export-epcis", "--pack", f"{GTIN}:S1")
    assert [event["bizStep"] for event in exported["epcisBody"]["eventList"]] == ["commissioning"]
    assert [tx.tx_type for tx in import_epcis(json.dumps(exported))] == ["supply.commission"]
    lot = ok(home, "export-epcis", "--lot", f"{GTIN}:LOT1")["epcisBody"]["eventList"]
    assert lot[0]["epcList"] == [f"https://id.gs1.org/01/{GTIN}/21/S1", f"https://id.gs1.org/01/{GTIN}/21/S2"]
    assert lot[0]["ilmd"] == {"cbvmda:lotNumber": "LOT1", "cbvmda:itemExpirationDate": "2099-12-31"}
    both = run(home, "export-epcis", "--pack", f"{GTIN}:S1", "--lot", f"{GTIN}:LOT1")
    assert both.exit_code == 2 and "exactly one of --pack" in both.output
    unknown = run(home, "export-epcis", "--pack", f"{GTIN}:NEVER")
    assert unknown.exit_code != 0 and "no such pack or lot was commissioned" in unknown.output


def test_the_cli_queries_events_by_pack_lot_gtin_site_and_time(client: InProcessClient, home: Path) -> None:
    client.ledger.ok(MAKER, "supply.ship", SupplyShip(PHARMACY.public_key, (PackRef(GTIN, "S2"),)))
    shipped_ms = client.ledger.time_ms
    every = ok(home, "query", "--gtin", GTIN)
    assert [(row["serial"], row["kind"]) for row in every["events"]] == [
        ("S1", "commission"),
        ("S2", "commission"),
        ("C1", "commission"),
        ("C2", "commission"),
        ("S2", "ship"),
    ], "in ledger order"
    assert every["more"] is False
    with_pharmacy = ok(home, "query", "--site", PHARMACY.public_key.hex())["events"]
    assert [(row["serial"], row["kind"]) for row in with_pharmacy] == [("S2", "ship")]
    assert [row["kind"] for row in ok(home, "query", "--pack", f"{GTIN}:S2")["events"]] == ["commission", "ship"]
    assert len(ok(home, "query", "--lot", f"{GTIN}:LOT2")["events"]) == 2
    moment = datetime.datetime.fromtimestamp(shipped_ms / 1000, tz=datetime.UTC).isoformat()
    assert [row["kind"] for row in ok(home, "query", "--since", moment)["events"]] == ["ship"]
    capped = ok(home, "query", "--gtin", GTIN, "--limit", "2")
    assert len(capped["events"]) == 2 and capped["more"] is True
    document = ok(home, "query", "--site", PHARMACY.public_key.hex(), "--epcis")
    assert [event["bizStep"] for event in document["epcisBody"]["eventList"]] == ["shipping"]
    bad = run(home, "query", "--pack", f"{GTIN}:S2", "--gtin", GTIN)
    assert bad.exit_code == 2 and "at most one of" in bad.output
    malformed = run(home, "query", "--gtin", "123")
    assert malformed.exit_code != 0 and "must be 14 digits" in malformed.output
