"""Cold chain: a brand owner declares storage temperatures, a shipment's parties report its
logger's readings (by hand or from EPCIS sensorElementList), and readings outside the range
raise a cold-chain-breach alert."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from health_world import GTIN, MAKER, PHARMACY, InProcessClient
from ledger_harness import LedgerHarness, key
from p2pmed.cli.main import cli
from p2pmed.crypto import save_signing_key
from p2pmed.interop.epcis import EpcisError, import_epcis
from p2pmed.ledger.contracts import supply
from p2pmed.ledger.contracts.supply import (
    PackRef,
    ProductStorage,
    SensorReading,
    SensorReport,
    SupplyAggregate,
    SupplyCommission,
    SupplyReceive,
    SupplyShip,
)
from p2pmed.ledger.errors import RejectReason
from test_epcis import PARTIES, PHARMACY_GLN, document, event, shipping

BRAND, RIVAL, CARRIER = key("brand"), key("rival"), key("carrier")
CLINIC = key("clinic")
VACCINE = "10614141073464"
PACKS = tuple(PackRef(VACCINE, f"V{index}") for index in range(4))
CASE = "006141410000000012"
FRIDGE = ProductStorage(VACCINE, 200, 800)


def reading(centi_c: int, at_ms: int = 1_000) -> SensorReading:
    return SensorReading(at_ms, centi_c)


@pytest.fixture
def ledger() -> LedgerHarness:
    ledger = LedgerHarness()
    for party, kind in ((BRAND, "manufacturer"), (RIVAL, "manufacturer"), (CARRIER, "distributor")):
        ledger.admit_organisation(party, kind)
    ledger.admit_organisation(CLINIC, "hospital")
    ledger.grant_prefix(BRAND, "0614141")
    ledger.ok(BRAND, "supply.commission", SupplyCommission(VACCINE, "L1", "2031-12-31", tuple(p.serial for p in PACKS)))
    return ledger


def shipped(ledger: LedgerHarness) -> bytes:
    ledger.ok(BRAND, "supply.aggregate", SupplyAggregate(CASE, PACKS[2:], ()))
    result = ledger.run(BRAND, "supply.ship", SupplyShip(CARRIER.public_key, PACKS[:2], (CASE,)))
    assert result.ok, result.detail
    return result.tx_id


def breaches(ledger: LedgerHarness) -> list[supply.Alert]:
    return [alert for alert in supply.alerts(ledger.state) if alert.kind == "cold-chain-breach"]


def test_only_the_prefix_holder_declares_a_sane_storage_range(ledger: LedgerHarness) -> None:
    assert "company prefix declares its storage" in ledger.refused(
        RIVAL, "supply.product.storage", FRIDGE, RejectReason.NOT_AUTHORISED
    )
    for bad in (ProductStorage(VACCINE, 800, 200), ProductStorage(VACCINE, -30_000, 800)):
        ledger.refused(BRAND, "supply.product.storage", bad, RejectReason.INVALID)
    ledger.ok(BRAND, "supply.product.storage", FRIDGE)
    assert supply.storage_of(ledger.state, VACCINE) == FRIDGE


def test_readings_outside_the_range_raise_one_alert_per_product(ledger: LedgerHarness) -> None:
    ledger.ok(BRAND, "supply.product.storage", FRIDGE)
    shipment = shipped(ledger)
    ledger.ok(CARRIER, "supply.sensor.report", SensorReport(shipment, (reading(450), reading(790))))
    assert breaches(ledger) == []
    ledger.ok(CARRIER, "supply.sensor.report", SensorReport(shipment, (reading(500), reading(1_210), reading(90))))
    (alert,) = breaches(ledger)
    assert (alert.gtin, alert.serial, alert.organisation) == (VACCINE, "V0", CARRIER.public_key)
    assert "2 of 3 readings outside 2.00 °C..8.00 °C, worst 12.10 °C" in alert.detail
    assert [len(report.readings) for report in supply.sensor_reports(ledger.state, shipment)] == [2, 3]


def test_a_product_without_a_declared_range_raises_nothing(ledger: LedgerHarness) -> None:
    shipment = shipped(ledger)
    ledger.ok(BRAND, "supply.sensor.report", SensorReport(shipment, (reading(3_000),)))
    assert breaches(ledger) == []


def test_packs_in_containers_count_too(ledger: LedgerHarness) -> None:
    ledger.ok(BRAND, "supply.product.storage", FRIDGE)
    ledger.ok(BRAND, "supply.aggregate", SupplyAggregate(CASE, PACKS, ()))
    sent = ledger.run(BRAND, "supply.ship", SupplyShip(CARRIER.public_key, (), (CASE,)))
    ledger.ok(CARRIER, "supply.receive", SupplyReceive(sent.tx_id, (), (), (CASE,)))
    ledger.ok(CARRIER, "supply.sensor.report", SensorReport(sent.tx_id, (reading(-150),)))
    (alert,) = breaches(ledger)
    assert alert.serial == "V0" and "worst -1.50 °C" in alert.detail


def test_only_a_shipments_parties_report_and_reports_are_bounded(
    ledger: LedgerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from p2pmed.ledger.contracts.supply import _coldchain

    shipment = shipped(ledger)
    assert "shipper or receiver" in ledger.refused(
        CLINIC, "supply.sensor.report", SensorReport(shipment, (reading(500),)), RejectReason.NOT_AUTHORISED
    )
    for body, fragment in (
        (SensorReport(shipment, ()), "give 1..256 readings"),
        (SensorReport(shipment, (reading(200_000),)), "not a temperature"),
        (SensorReport(shipment, (reading(500, -1),)), "at or after 1970"),
        (SensorReport(b"\x01" * 32, (reading(500),)), "no shipment has id"),
        (SensorReport(b"\x01", (reading(500),)), "32 bytes"),
    ):
        assert fragment in ledger.refused(BRAND, "supply.sensor.report", body, RejectReason.INVALID)
    monkeypatch.setattr(_coldchain, "REPORTS_PER_SHIPMENT_MAX", 1)
    ledger.ok(BRAND, "supply.sensor.report", SensorReport(shipment, (reading(500),)))
    assert "the most it keeps" in ledger.refused(
        BRAND, "supply.sensor.report", SensorReport(shipment, (reading(500),)), RejectReason.INVALID
    )


# -- from EPCIS sensorElementList ------------------------------------------------------------------------------


def logger(*reports: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "sensorMetadata": {"time": "2026-03-01T10:00:00Z", "deviceID": "urn:epc:id:giai:4000001.111"},
            "sensorReport": list(reports),
        }
    ]


def test_a_shipping_events_temperatures_become_a_report_of_its_shipment() -> None:
    readings = logger(
        {"type": "Temperature", "value": 5.0, "uom": "CEL"},
        {"type": "gs1:Temperature", "minValue": 35.6, "maxValue": 50.0, "uom": "FAH", "time": "2026-03-01T11:00:00Z"},
        {"type": "AbsoluteHumidity", "value": 12.1, "uom": "A93"},
    )
    txs = import_epcis(json.dumps(document(shipping(sensorElementList=readings))), PARTIES)
    assert [(tx.tx_type, tx.shipment_from) for tx in txs] == [("supply.ship", None), ("supply.sensor.report", 0)]
    ten, eleven = 1_772_359_200_000, 1_772_362_800_000
    assert txs[1].body == SensorReport(
        b"", (SensorReading(ten, 500), SensorReading(eleven, 200), SensorReading(eleven, 1000))
    )


def test_a_receiving_events_temperatures_report_the_shipment_on_the_ledger() -> None:
    received = event(
        "receiving", "OBSERVE", sensorElementList=logger({"type": "Temperature", "value": 9, "uom": "CEL"})
    )
    txs = import_epcis(json.dumps(received), PARTIES, shipment_of=lambda pack: b"\x07" * 32)
    assert [(tx.tx_type, tx.body.shipment) for tx in txs] == [
        ("supply.receive", b"\x07" * 32),
        ("supply.sensor.report", b"\x07" * 32),
    ]
    assert txs[1].body.readings[0].time_ms == 1_772_359_200_000


@pytest.mark.parametrize(
    ("readings", "path", "fragment"),
    [
        (logger({"type": "Temperature", "value": 5.0, "uom": "LTR"}), ".sensorReport[0].uom", "not a temperature unit"),
        (logger({"type": "Temperature", "value": "5", "uom": "CEL"}), ".sensorReport[0].value", "expected a number"),
        (
            logger({"type": "Temperature", "value": -300, "uom": "CEL"}),
            ".sensorReport[0].value",
            "is not a temperature",
        ),
        ([{"sensorReport": "hot"}], "$.sensorElementList[0].sensorReport", "expected an array"),
    ],
)
def test_bad_sensor_data_is_refused(readings: list[Any], path: str, fragment: str) -> None:
    with pytest.raises(EpcisError) as caught:
        import_epcis(json.dumps(shipping(sensorElementList=readings)), PARTIES)
    assert caught.value.key.endswith(path) and fragment in caught.value.reason


def test_a_breach_imported_through_the_cli_shows_in_supply_alerts(
    client: InProcessClient, home: Path, directory: Path
) -> None:
    maker = directory / "maker.pem"
    save_signing_key(maker, MAKER)

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["supply", args[0], "--home", str(home), *args[1:]])

    stored = run("storage", GTIN, "--min", "2", "--max", "8", "--key", str(maker), "--wait")
    assert stored.exit_code == 0, stored.output
    warm = shipping(
        [f"https://id.gs1.org/01/{GTIN}/21/S1"],
        sensorElementList=logger({"type": "Temperature", "value": 14.5, "uom": "CEL"}),
    )
    path = directory / "warm.json"
    path.write_text(json.dumps(document(warm)))
    party = f"{PHARMACY_GLN}={PHARMACY.public_key.hex()}"
    imported = run("import-epcis", str(path), "--key", str(maker), "--party", party)
    assert imported.exit_code == 0, imported.output
    shown = run("alerts").output
    assert "cold-chain-breach" in shown and "worst 14.50 °C" in shown
