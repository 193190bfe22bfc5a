"""De-identification of FHIR resources by HIPAA Safe Harbor (45 CFR 164.514(b)(2)), and the
k-anonymity check a research export must pass.

Safe Harbor removes 18 kinds of identifiers of the patient (and of relatives, employers,
household members): names; geographic subdivisions smaller than a state (a ZIP code keeps
its first three digits only where those cover more than 20,000 people, else ``000``); every
element of dates directly related to the person except the year, and ages over 89 (grouped
as 90 or older, with the birth year that would show them); telephone and fax numbers; email
addresses; social security, medical record, health plan beneficiary, account and
certificate or licence numbers; vehicle and device identifiers and serial numbers; URLs; IP
addresses; biometric identifiers; full-face photographs; any other unique identifying
number, characteristic or code.

Rather than hunt for identifiers, this module keeps what a study can use and drops the
rest: per resource type, a list of elements (``_KEPT``); inside them, codings keep only
system, code and display, and free text, narrative, notes, extensions, identifiers,
attachments and references to anyone but the patient go. What is kept is then generalised:
every date and date-time to its year (an ``instant`` is dropped, as FHIR allows no year-only
instant), ages in years over 89 to ``>= 90``, the patient's birth date to its year, or to
nothing for someone 90 or older, the address to the three-digit ZIP (``RESTRICTED_ZIP3``
are ``000``). The patient and the resources are named by study pseudonyms
(``Pseudonyms``: HMAC-SHA256 under a secret the exporting site keeps per study, so one
patient's records link within a study and not across studies, and nobody without the secret
can test a guess). Last, a sweep checks every string left against the identifying values
the input carried (names, telecoms, addresses, identifiers, ids) and against patterns of
emails, URLs, IP addresses and phone or social security numbers: a string that matches is
replaced by ``[removed]``, so a name typed into a coding's display does not leak either.

The quasi-identifiers a linking attack uses are the patient's year of birth (or ``90+``),
sex and three-digit ZIP (``QuasiIdentifiers``); ``smallest_class`` finds the smallest group
of patients sharing them, which k-anonymity requires to be at least the study's k.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "RESTRICTED_ZIP3",
    "SUPPORTED_TYPES",
    "DeidentifiedPatient",
    "KAnonymityError",
    "Pseudonyms",
    "QuasiIdentifiers",
    "deidentify_patient",
    "deidentify_resource",
    "identifying_values",
    "smallest_class",
    "zip3",
]

RESTRICTED_ZIP3 = frozenset(
    {
        "036",
        "059",
        "063",
        "102",
        "203",
        "556",
        "692",
        "790",
        "821",
        "823",
        "830",
        "831",
        "878",
        "879",
        "884",
        "890",
        "893",
    }
)
"""Three-digit ZIPs of 20,000 people or fewer (HHS's de-identification guidance, 2000 Census)."""
AGE_YEARS_MAX = 89
REMOVED = "[removed]"
UNKNOWN = "unknown"

_CODED = ("category", "code", "interpretation", "bodySite", "method", "dataAbsentReason", "severity")
_VALUES = ("valueQuantity", "valueCodeableConcept", "valueBoolean", "valueInteger", "valueRange", "valueRatio")
_KEPT: dict[str, frozenset[str]] = {
    "Patient": frozenset({"gender", "birthDate", "deceasedBoolean", "deceasedDateTime", "address"}),
    "Observation": frozenset(
        {"status", *_CODED, *_VALUES, "valueDateTime", "effectiveDateTime", "effectivePeriod", "referenceRange"}
        | {"component", "subject"}
    ),
    "Condition": frozenset(
        {"clinicalStatus", "verificationStatus", *_CODED, "subject", "recordedDate", "stage"}
        | {f"{moment}{kind}" for moment in ("onset", "abatement") for kind in ("DateTime", "Age", "Period", "Range")}
    ),
    "MedicationRequest": frozenset(
        {"status", "intent", "category", "priority", "medicationCodeableConcept", "medication", "subject"}
        | {"authoredOn", "courseOfTherapyType", "doNotPerform"}
    ),
}
SUPPORTED_TYPES = frozenset(_KEPT)
_DROPPED_KEYS = frozenset(
    {"id", "extension", "modifierExtension", "text", "note", "identifier", "display", "meta", "contained"}
    | {"url", "data", "attachment", "photo", "reference", "patientInstruction", "valueString"}
)
"""Never kept below a resource's top level: ids, free text, extensions and what points elsewhere.
(A coding's ``display`` is kept by ``_coding``; elsewhere ``display`` is a reference's label.)"""
_INSTANT_KEYS = frozenset({"issued", "effectiveInstant"})
_DATE = re.compile(r"(\d{4})(-\d\d(-\d\d(T[0-9:.]+(Z|[+-]\d\d:\d\d)?)?)?)?")
_SWEEP = re.compile(
    r"[\w.+-]+@[\w-]+\.[\w.-]+"  # email
    r"|\b(?:https?|ftp)://\S+|\bwww\.\S+"  # URL
    r"|\b\d{1,3}(?:\.\d{1,3}){3}\b"  # IPv4
    r"|\b\d{3}-\d{2}-\d{4}\b"  # social security number
    r"|\+?\(?\d{2,4}\)?[\s.-]\d{3,4}[\s.-]\d{3,4}"  # telephone or fax
    r"|\b\d{4}-\d\d-\d\d|\b\d{1,2}/\d{1,2}/\d{2,4}\b"  # a full date in text
)
_TERMINOLOGY_KEYS = frozenset({"system"})
"""Code system URIs name a terminology, not a person: the sweep leaves them."""
_IDENTIFYING_PARTS = {
    "name": ("family", "given", "prefix", "suffix", "text"),
    "telecom": ("value",),
    "address": ("line", "city", "district", "postalCode", "text"),
    "identifier": ("value",),
    "contact": ("family", "given", "value", "line", "city", "text"),
}


class KAnonymityError(ValueError):
    """A data set whose smallest class of quasi-identifiers is below the study's k."""


@dataclass(frozen=True)
class QuasiIdentifiers:
    birth_year: str
    """A year, ``90+`` or ``unknown``."""
    sex: str
    zip3: str


@dataclass(frozen=True)
class Pseudonyms:
    """Study pseudonyms: HMAC-SHA256 under the exporting site's secret for this study."""

    secret: bytes
    study_id: str

    def __post_init__(self) -> None:
        assert len(self.secret) >= 32, "a study secret is at least 256 bits"

    def of(self, kind: str, identifier: bytes) -> str:
        message = b"\x00".join((b"p2pmed-research-pseudonym-v1", self.study_id.encode(), kind.encode(), identifier))
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class DeidentifiedPatient:
    resource: dict[str, Any]
    quasi_identifiers: QuasiIdentifiers


def zip3(postal_code: str) -> str:
    """The three-digit ZIP Safe Harbor allows, ``000`` for the restricted ones, ``unknown`` for
    anything that is not a US ZIP."""
    digits = postal_code.strip().split("-")[0]
    if len(digits) != 5 or not digits.isdigit():
        return UNKNOWN
    return "000" if digits[:3] in RESTRICTED_ZIP3 else digits[:3]


def _year(text: str) -> str | None:
    matched = _DATE.fullmatch(text)
    return None if matched is None else matched.group(1)


def _reference_labels(value: Any, found: set[str]) -> None:
    """The ``display`` of every reference: the name of whoever it points to."""
    if isinstance(value, list):
        for item in value:
            _reference_labels(item, found)
    elif isinstance(value, dict):
        if "reference" in value and isinstance(value.get("display"), str):
            found.add(value["display"].strip())
        for inner in value.values():
            _reference_labels(inner, found)


def identifying_values(resource: dict[str, Any]) -> frozenset[str]:
    """The strings of ``resource`` that identify someone: names, telecoms, addresses,
    identifiers, its id and the labels of its references."""
    found: set[str] = set()

    def collect(value: Any, parts: tuple[str, ...]) -> None:
        if isinstance(value, list):
            for item in value:
                collect(item, parts)
        elif isinstance(value, dict):
            for part, inner in value.items():
                if part in parts:
                    collect(inner, ("",))
                elif isinstance(inner, dict | list):
                    collect(inner, parts)
        elif isinstance(value, str) and parts == ("",):
            found.add(value.strip())

    for element, parts in _IDENTIFYING_PARTS.items():
        collect(resource.get(element), parts)
    if isinstance(resource.get("id"), str):
        found.add(resource["id"])
    _reference_labels(resource, found)
    return frozenset(value for value in found if len(value) >= 2)


def _sweep(value: Any, identifying: re.Pattern[str] | None) -> Any:
    if isinstance(value, dict):
        return {key: inner if key in _TERMINOLOGY_KEYS else _sweep(inner, identifying) for key, inner in value.items()}
    if isinstance(value, list):
        return [_sweep(item, identifying) for item in value]
    if isinstance(value, str) and (_SWEEP.search(value) or (identifying and identifying.search(value))):
        return REMOVED
    return value


def _matcher(values: frozenset[str]) -> re.Pattern[str] | None:
    """A pattern that finds any of ``values`` as a whole word, ignoring case."""
    if not values:
        return None
    alternatives = "|".join(re.escape(value) for value in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _coding(coding: dict[str, Any]) -> dict[str, Any]:
    return {key: coding[key] for key in ("system", "code", "display") if isinstance(coding.get(key), str)}


def _age(quantity: dict[str, Any]) -> dict[str, Any]:
    """Ages in years over 89 grouped as ``>= 90`` (UCUM ``a``)."""
    value = quantity.get("value")
    if quantity.get("code") == "a" and isinstance(value, int | float) and value > AGE_YEARS_MAX:
        return {**quantity, "value": AGE_YEARS_MAX + 1, "comparator": ">="}
    return quantity


def _general(value: Any, key: str) -> Any:
    """``value`` under ``key`` with ids, text and references gone and dates to the year."""
    if isinstance(value, list):
        kept = [_general(item, key) for item in value]
        return [item for item in kept if item not in (None, {}, [])]
    if isinstance(value, dict):
        if key == "coding":
            return _coding(value)
        inner = {
            name: _general(item, name)
            for name, item in value.items()
            if name not in _DROPPED_KEYS and name not in _INSTANT_KEYS
        }
        inner = {name: item for name, item in inner.items() if item not in (None, {}, [])}
        return _age(inner) if "value" in inner else inner
    if isinstance(value, str):
        return _year(value) or value
    return value


def _subject(pseudonyms: Pseudonyms, patient: bytes) -> dict[str, str]:
    return {"reference": f"Patient/{pseudonyms.of('patient', patient)}"}


def deidentify_resource(
    resource: dict[str, Any],
    pseudonyms: Pseudonyms,
    patient: bytes,
    record_id: bytes,
    known: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """A clinical resource (Observation, Condition, MedicationRequest) as a study may see it;
    ``known`` are identifying values from elsewhere (the patient's own ``identifying_values``),
    swept out of what is kept along with the resource's own."""
    resource_type = resource.get("resourceType")
    assert resource_type in SUPPORTED_TYPES and resource_type != "Patient", resource_type
    kept: dict[str, Any] = {"resourceType": resource_type, "id": pseudonyms.of("record", record_id)}
    for element in sorted(_KEPT[resource_type] & resource.keys()):
        if element == "subject":
            kept["subject"] = _subject(pseudonyms, patient)
        elif element == "medication" and isinstance(resource["medication"], dict):
            concept = _general(resource["medication"].get("concept"), "concept")
            if concept:
                kept["medication"] = {"concept": concept}
        else:
            generalised = _general(resource[element], element)
            if generalised not in (None, {}, []):
                kept[element] = generalised
    swept: dict[str, Any] = _sweep(kept, _matcher(known | identifying_values(resource)))
    return swept


def _birth_year(resource: dict[str, Any], export_year: int) -> str:
    year = _year(resource["birthDate"]) if isinstance(resource.get("birthDate"), str) else None
    if year is None:
        return UNKNOWN
    return "90+" if export_year - int(year) > AGE_YEARS_MAX else year


def _zip3_of(resource: dict[str, Any]) -> str:
    addresses = resource.get("address")
    for address in addresses if isinstance(addresses, list) else []:
        if isinstance(address, dict) and isinstance(address.get("postalCode"), str):
            return zip3(address["postalCode"])
    return UNKNOWN


def deidentify_patient(
    resource: dict[str, Any] | None, pseudonyms: Pseudonyms, patient: bytes, export_year: int
) -> DeidentifiedPatient:
    """The patient as a study may see them (pseudonym, sex, birth year unless 90 or older,
    three-digit ZIP) and their quasi-identifiers; ``resource`` is their FHIR Patient, if any."""
    source = resource or {}
    quasi = QuasiIdentifiers(
        _birth_year(source, export_year),
        source["gender"] if source.get("gender") in ("male", "female", "other", "unknown") else UNKNOWN,
        _zip3_of(source),
    )
    kept: dict[str, Any] = {"resourceType": "Patient", "id": pseudonyms.of("patient", patient)}
    if quasi.sex != UNKNOWN:
        kept["gender"] = quasi.sex
    if quasi.birth_year not in (UNKNOWN, "90+"):
        kept["birthDate"] = quasi.birth_year
    if quasi.zip3 != UNKNOWN:
        kept["address"] = [{"postalCode": quasi.zip3}]
    if isinstance(source.get("deceasedBoolean"), bool):
        kept["deceasedBoolean"] = source["deceasedBoolean"]
    elif isinstance(source.get("deceasedDateTime"), str):
        kept["deceasedBoolean"] = True  # the year of death with the birth year could show an age over 89
    return DeidentifiedPatient(kept, quasi)


def smallest_class(quasi_identifiers: Iterable[QuasiIdentifiers]) -> tuple[int, QuasiIdentifiers | None]:
    """The size of the smallest group of patients sharing all quasi-identifiers, and its values
    (0 and None for no patients)."""
    counts = Counter(quasi_identifiers)
    if not counts:
        return 0, None
    values, size = min(counts.items(), key=lambda item: (item[1], item[0].birth_year, item[0].sex, item[0].zip3))
    return size, values
