"""DSCSA transaction information and statement of a shipment, derived from the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from health_world import GTIN, MAKER, PALLET, PHARMACY, InProcessClient
from p2pmed.cli.main import cli
from p2pmed.interop.dscsa import STATEMENT, transaction_information
from p2pmed.ledger.contracts.supply import Pack, PackRef, Shipment, SupplyShip, gs1_check_digit


def run(home: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["supply", "ti-ts", "--home", str(home), *args])


def test_a_shipments_ti_ts_lists_its_products_parties_and_the_sellers_attestation(
    client: InProcessClient, home: Path
) -> None:
    loose = (PackRef(GTIN, "S1"), PackRef(GTIN, "S2"))
    shipped = client.ledger.run(MAKER, "supply.ship", SupplyShip(PHARMACY.public_key, loose, (PALLET,)))
    assert shipped.ok, shipped.detail
    result = run(home, shipped.tx_id.hex(), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    info = document["transaction_information"]
    assert [(p["lot"], p["expiry"], p["quantity"], p["serials"]) for p in info["products"]] == [
        ("LOT1", "2099-12-31", 2, ["S1", "S2"]),
        ("LOT2", "2099-12-31", 2, ["C1", "C2"]),  # in the pallet's case
    ]
    assert (info["seller"]["id"], info["seller"]["name"]) == (MAKER.public_key.hex(), "manufacturer")
    assert (info["buyer"]["id"], info["buyer"]["kind"]) == (PHARMACY.public_key.hex(), "pharmacy")
    statement = document["transaction_statement"]
    assert statement["statement"] == STATEMENT and statement["signed_transaction"] == shipped.tx_id.hex()
    assert document["received"] is None
    human = run(home, shipped.tx_id.hex()).output
    assert f"GTIN {GTIN} lot LOT1 expiry 2099-12-31: 2 packs" in human and "FDCA Sec. 581(27)(A)-(G)" in human
    missing = run(home, "00" * 32)
    assert missing.exit_code != 0 and "no shipment has id" in missing.output


def test_a_us_gtin_gives_its_ndc() -> None:
    body = "0031234567890"
    gtin = body + gs1_check_digit(body)
    shipment = Shipment(b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, (PackRef(gtin, "A"),), 7, 0, None)
    pack = Pack(gtin, "A", "L1", b"\x02" * 32, b"\x02" * 32, "in-transit", shipment.id, None, 1, 1)
    info = transaction_information(shipment, [pack], {(gtin, "L1"): "2030-01-31"}, None, None)
    (product,) = info["transaction_information"]["products"]
    assert product["ndc"] == "1234567890" and info["transaction_information"]["transaction_date"].startswith("1970")
