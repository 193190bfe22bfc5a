"""Who may do what with health records: one table, read by the identity and records rules
and printed in docs/access.md.

- ``REGISTRARS``: which organisation kinds may register people of each role. Clinicians
  work for care providers and laboratories, pharmacists for pharmacies (and hospital
  pharmacies), researchers for trial sponsors and (academic) hospitals; patients are
  registered where they receive care. Distributors and manufacturers register nobody:
  they handle packs, not patients.
- ``PURPOSES_OF``: the purposes of use (HL7 v3 PurposeOfUse) a reader may state, by role
  for people and by kind for organisations reading as themselves (HIPAA's minimum
  necessary: the purpose must fit the reader; a researcher's reads are research).
- ``CATEGORIES_WRITTEN_BY``: the data categories a role or kind may write. A writer other
  than the patient also needs a care relationship (``records.apply_add``).
- ``CARE_PROVIDERS``: the kinds whose clinicians may break the glass, for treatment only
  (``BREAK_GLASS_PURPOSES``), at most ``BREAK_GLASS_PER_WINDOW`` times a window. Breaking
  the glass needs no consent and overrides a patient's deny (``consent.deny``), as
  emergency treatment does in FHIR (``BTG``) and HIPAA; it is audited, names the deny it
  overrode, reaches the patient's notices and is reviewed by the clinician's organisation.

A ``regulator`` (a board of pharmacy, FDA, a national competent authority) is an
organisation kind, not a person's role, so that only the validators' 2f+1 vote makes one:
were it a role, a pharmacy could register its own regulator and close its own diversion
flags. It oversees the supply chain (it reviews and closes diversion flags, as the
validators do: ``supply._flags``), registers nobody and reads no health record.

Staff (every role but ``patient``) act for the organisation that registered them and are
in force only while it is (``identity.person_of``); a patient's identity outlives any one
site, since their consents and records must stay theirs if that site is revoked.
"""

from __future__ import annotations

__all__ = [
    "BREAK_GLASS_PER_WINDOW",
    "BREAK_GLASS_PURPOSES",
    "BREAK_GLASS_WINDOW_MS",
    "CARE_PROVIDERS",
    "CATEGORIES",
    "CATEGORIES_WRITTEN_BY",
    "PURPOSES",
    "PURPOSES_OF",
    "REGISTRARS",
    "STAFF_ROLES",
    "table_markdown",
]

CATEGORIES = frozenset(
    {"condition", "genomics", "imaging", "laboratory", "medication", "mental-health", "procedure", "vital-signs"}
)
"""Data categories (FHIR ``Consent.provision.class``)."""
PURPOSES = frozenset({"TREAT", "ETREAT", "HRESCH", "CLINTRL", "PUBHLTH", "HPAYMT", "PATRQT"})
"""Purposes of use (HL7 v3 PurposeOfUse, FHIR ``Consent.provision.purpose``)."""
CARE_PROVIDERS = frozenset({"hospital", "clinic"})
BREAK_GLASS_PER_WINDOW = 5
BREAK_GLASS_WINDOW_MS = 24 * 3600 * 1000
"""A clinician breaks the glass at most ``BREAK_GLASS_PER_WINDOW`` times in any such window:
an emergency physician's shift stays well under it; a clinician browsing records does not."""
STAFF_ROLES = frozenset({"clinician", "pharmacist", "researcher"})
BREAK_GLASS_PURPOSES = frozenset({"ETREAT", "TREAT"})

REGISTRARS: dict[str, frozenset[str]] = {
    "patient": frozenset({"hospital", "clinic", "laboratory", "pharmacy"}),
    "clinician": frozenset({"hospital", "clinic", "laboratory"}),
    "pharmacist": frozenset({"pharmacy", "hospital"}),
    "researcher": frozenset({"sponsor", "hospital"}),
}

PURPOSES_OF: dict[str, frozenset[str]] = {
    # people, by role
    "patient": frozenset({"PATRQT"}),
    "clinician": frozenset({"TREAT", "ETREAT", "HPAYMT"}),
    "pharmacist": frozenset({"TREAT"}),
    "researcher": frozenset({"HRESCH", "CLINTRL"}),
    # organisations reading as themselves, by kind
    "hospital": frozenset({"TREAT", "ETREAT", "HPAYMT", "HRESCH", "CLINTRL", "PUBHLTH"}),
    "clinic": frozenset({"TREAT", "ETREAT", "HPAYMT", "PUBHLTH"}),
    "laboratory": frozenset({"TREAT", "PUBHLTH"}),
    "pharmacy": frozenset({"TREAT", "HPAYMT"}),
    "sponsor": frozenset({"HRESCH", "CLINTRL"}),
    "distributor": frozenset(),
    "manufacturer": frozenset(),
    "regulator": frozenset(),
}

CATEGORIES_WRITTEN_BY: dict[str, frozenset[str]] = {
    "patient": CATEGORIES,
    "clinician": CATEGORIES,
    "pharmacist": frozenset({"medication"}),
    "researcher": frozenset(),
    "hospital": CATEGORIES,
    "clinic": CATEGORIES,
    "laboratory": frozenset({"laboratory", "genomics", "imaging"}),
    "pharmacy": frozenset({"medication"}),
    "sponsor": frozenset(),
    "distributor": frozenset(),
    "manufacturer": frozenset(),
    "regulator": frozenset(),
}


def table_markdown() -> str:
    """The table as docs/access.md prints it (a test keeps the two the same)."""
    lines = ["| role or kind | registered by | may read for | may write |", "|---|---|---|---|"]
    for name, purposes in PURPOSES_OF.items():
        registrars = ", ".join(sorted(REGISTRARS[name])) if name in REGISTRARS else "the validators (2f+1)"
        written = CATEGORIES_WRITTEN_BY[name]
        categories = "all" if written == CATEGORIES else ", ".join(sorted(written)) or "nothing"
        lines.append(f"| {name} | {registrars} | {', '.join(sorted(purposes)) or 'nothing'} | {categories} |")
    return "\n".join(lines) + "\n"
