"""Form FDA 3911 (Drug Notification) data for an illegitimate-product case on the ledger.

The form's numbered fields as JSON, filled from what the ledger knows: the
determination date and classification (fields 4, 5), the quantity, serial and lot
numbers and expiry dates of the quarantined packs (12, 14-16), the NDC where the GTIN
carries one (13: a US drug's GTIN-14 is 0, 03, the 10-digit NDC and a check digit),
the description (17), the notifying company's name and category (20, 21). What the
ledger does not hold (product name, ingredients, strength, dosage form, address,
contact) is null for the reporter to complete, and field 2, the incident number, is
FDA's to assign. ``ledger`` adds the evidence: case id, step times, lateness, partners.
"""

from __future__ import annotations

import datetime
from typing import Any

from p2pmed.ledger.contracts.identity import Organisation
from p2pmed.ledger.contracts.supply import Lot, SuspectCase, SuspectStep

__all__ = ["COMPANY_CATEGORIES", "form_3911", "ndc_of"]

COMPANY_CATEGORIES = {
    "manufacturer": "Manufacturer",
    "distributor": "Wholesale Distributor",
    "pharmacy": "Dispenser",
    "hospital": "Dispenser",
}
_CLASSIFICATION_NAMES = {
    "counterfeit": "Counterfeit",
    "diverted": "Diverted",
    "stolen": "Stolen",
    "intentional-adulteration": "Intentional adulteration",
    "unfit-for-distribution": "Otherwise unfit for distribution",
    "fraudulent-transaction": "Fraudulent transaction",
}


def _date(step: SuspectStep | None) -> str | None:
    if step is None:
        return None
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(milliseconds=step.time_ms)
    return moment.date().isoformat()


def ndc_of(gtin: str) -> str | None:
    """The 10-digit NDC a US drug's GTIN-14 carries (0, 03, the NDC, a check digit), or None."""
    return gtin[3:13] if gtin.startswith("003") else None


def form_3911(case: SuspectCase, lots: dict[tuple[str, str], Lot], organisation: Organisation | None) -> dict[str, Any]:
    """The form's fields for ``case`` (illegitimate or notified); ``lots`` maps (GTIN, lot) to
    every lot of the case's packs, read by the caller; ``organisation`` is the notifying company."""
    assert case.status in ("illegitimate", "notified") and case.classification is not None
    gtins = sorted({pack.gtin for pack in case.packs})
    ndcs = sorted({ndc for ndc in map(ndc_of, gtins) if ndc is not None})
    return {
        "1_type_of_report": "Initial Notification",
        "2_incident_number": None,
        "3_date_of_initial_notification": _date(case.notified),
        "4_date_determined_illegitimate": _date(case.determined),
        "5_classification": _CLASSIFICATION_NAMES[case.classification],
        "6_product_name": None,
        "7_primary_ingredients": None,
        "8_drug_use": None,
        "9_drug_description": None,
        "10_strength": None,
        "11_dosage_form": None,
        "12_quantity": {"number": len(case.packs), "unit": "packages"},
        "13ndc_of": ndcs[0] if len(ndcs) == 1 else ("Multiple" if ndcs else None),
        "14_serial_numbers": [pack.serial for pack in case.packs],
        "15_lot_numbers": sorted({lot for _, lot in lots}),
        "16_expiration_dates": sorted({found.expiry for found in lots.values()}),
        "17_description": case.description,
        "18_termination_description": None,
        "19_other_mechanisms": [],
        "20_company_name": None if organisation is None else organisation.profile.name,
        "21_company_category": None if organisation is None else COMPANY_CATEGORIES.get(organisation.kind),
        "ledger": {
            "case": case.id.hex(),
            "organisation": case.organisation.hex(),
            "gtins": gtins,
            "quarantined_ms": case.quarantined.time_ms,
            "determined_ms": None if case.determined is None else case.determined.time_ms,
            "notified_ms": None if case.notified is None else case.notified.time_ms,
            "notified_late": None if case.notified is None else case.notified.late,
            "partners": [partner.hex() for partner in case.partners],
        },
    }
