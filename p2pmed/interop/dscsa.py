"""DSCSA transaction information and transaction statement (TI/TS) for a change of ownership.

Each shipment on the ledger is a change of ownership from its source (the seller) to its
destination (the buyer), and FDCA section 581(26)-(27) asks the seller to give the buyer:

- transaction information: for each product, its NDC (where the GTIN carries one: a US
  drug's GTIN-14 is 0, 03, the 10-digit NDC and a check digit), lot, expiry, quantity and
  serials; the transaction and shipment dates; the seller's and buyer's names;
- a transaction statement: the seller's attestation of section 581(27)(A)-(G).

All of it is derived from the ledger: the products from the shipment's packs (loose, and
those in its containers now), the dates from the block that ordered the shipment. The
statement is attested by the shipment itself: its ``supply.ship`` transaction is signed by
the seller, and shipping on this ledger means making that statement (``attested_by``).
What the ledger does not hold (proprietary name, strength, dosage form, container size,
business addresses) is null for the seller's system to complete.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

from p2pmed.interop.fda3911 import ndc_of
from p2pmed.ledger.contracts.identity import Organisation
from p2pmed.ledger.contracts.supply import Pack, Shipment

__all__ = ["STATEMENT", "transaction_information"]

STATEMENT = (
    "Seller has complied with each applicable subsection of FDCA Sec. 581(27)(A)-(G): it is authorized as"
    " required under the DSCSA; it received the product from a person that is authorized as required under the"
    " DSCSA; it received transaction information and a transaction statement from the prior owner of the"
    " product; it did not knowingly ship a suspect or illegitimate product; it had systems and processes in place"
    " to comply with verification requirements; it did not knowingly provide false transaction information; and"
    " it did not knowingly alter the transaction history."
)


def _date(time_ms: int) -> str:
    return (datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(milliseconds=time_ms)).isoformat(
        timespec="seconds"
    )


def _party(found: Organisation | None, organisation: bytes) -> dict[str, Any]:
    return {
        "id": organisation.hex(),
        "name": None if found is None else found.profile.name,
        "kind": None if found is None else found.kind,
        "address": None,
    }


def transaction_information(
    shipment: Shipment,
    packs: Sequence[Pack],
    expiries: dict[tuple[str, str], str],
    seller: Organisation | None,
    buyer: Organisation | None,
) -> dict[str, Any]:
    """TI and TS for ``shipment``: ``packs`` are all it carries, ``expiries`` each (GTIN, lot)'s expiry."""
    products: dict[tuple[str, str], list[str]] = {}
    for found in packs:
        products.setdefault((found.gtin, found.lot), []).append(found.serial)
    return {
        "shipment": shipment.id.hex(),
        "transaction_information": {
            "products": [
                {
                    "gtin": gtin,
                    "ndc": ndc_of(gtin),
                    "proprietary_name": None,
                    "strength_and_dosage_form": None,
                    "container_size": None,
                    "lot": lot,
                    "expiry": expiries[(gtin, lot)],
                    "quantity": len(serials),
                    "serials": sorted(serials),
                }
                for (gtin, lot), serials in sorted(products.items())
            ],
            "transaction_date": _date(shipment.time_ms),
            "shipment_date": _date(shipment.time_ms),
            "seller": _party(seller, shipment.source),
            "buyer": _party(buyer, shipment.destination),
        },
        "transaction_statement": {
            "statement": STATEMENT,
            "attested_by": shipment.source.hex(),
            "signed_transaction": shipment.id.hex(),
            "height": shipment.height,
        },
        "received": None
        if shipment.receipt is None
        else {"height": shipment.receipt.height, "date": _date(shipment.receipt.time_ms)},
    }
