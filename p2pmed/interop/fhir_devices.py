"""FHIR R5 for medical devices: a registered device out as a ``Device``, a device's UDI read
from one, and a batch of readings in and out as ``Observation``s.

A device is named in FHIR by its GS1 Digital Link URI (``https://id.gs1.org/01/{GTIN}/21/
{serial}``, an identifier of system ``urn:ietf:rfc:3986``): the one name that carries both
halves of the UDI. ``device_resource`` renders a ``Device`` with that identifier, a
``udiCarrier`` (GS1 issuer, GTIN as device identifier, the human-readable form), its serial
number, status (active or inactive once revoked), the operating organisation as ``owner``
(a ledger party) and its role (device or gateway) as ``category`` text. ``import_udi``
reads the UDI of a ``Device``: the GTIN and serial of its GS1 ``udiCarrier``
(``carrierHRF`` if given, else ``deviceIdentifier`` and ``serialNumber``).

``import_readings`` reads the readings of one batch: a single ``Observation`` or a
``Bundle`` of them, untrusted JSON validated entry by entry. Every reading is the
device's (``Observation.device`` names its UDI; left out, it is set), of one patient and
one data category (coded, named by the importer, or implied by the LOINC code, as
``p2pmed.interop.fhir`` imports an Observation): a batch is one record. Each becomes the
canonical JSON the record holds and the Merkle tree hashes. ``readings_bundle`` is the
way out: a ``collection`` Bundle of the readings as they were stored.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p2pmed.interop.fhir import (
    PARTY_SYSTEM,
    FhirError,
    clinical_data,
    load_json,
    validate_resource,
)
from p2pmed.ledger.contracts.devices import READINGS_PER_BATCH_MAX, Device, udi_problem, udi_text

__all__ = [
    "GS1_DI_ISSUER",
    "URI_SYSTEM",
    "Readings",
    "device_resource",
    "import_readings",
    "import_udi",
    "readings_bundle",
    "udi_reference",
]

URI_SYSTEM = "urn:ietf:rfc:3986"
GS1_DI_ISSUER = "http://hl7.org/fhir/NamingSystem/gs1-di"
_DIGITAL_LINK = "https://id.gs1.org/01/{gtin}/21/{serial}"
_HRF_GTIN = re.compile(r"\(01\)([0-9]{14})")
_HRF_SERIAL = re.compile(r"\(21\)([^()]+)")


@dataclass(frozen=True)
class Readings:
    """One batch's readings: their patient and data category, each as canonical JSON."""

    patient: bytes
    category: str
    observations: tuple[bytes, ...]


def udi_reference(gtin: str, serial: str) -> dict[str, Any]:
    """A logical reference to a device: its GS1 Digital Link URI as identifier."""
    uri = _DIGITAL_LINK.format(gtin=gtin, serial=urllib.parse.quote(serial, safe=""))
    return {"identifier": {"system": URI_SYSTEM, "value": uri}}


def device_resource(found: Device) -> dict[str, Any]:
    """A registered device as an R5 ``Device``, validated."""
    resource = {
        "resourceType": "Device",
        "identifier": [udi_reference(found.gtin, found.serial)["identifier"]],
        "udiCarrier": [
            {
                "deviceIdentifier": found.gtin,
                "issuer": GS1_DI_ISSUER,
                "carrierHRF": udi_text(found.gtin, found.serial),
            }
        ],
        "status": "active" if found.revoked_ms is None else "inactive",
        "serialNumber": found.serial,
        "category": [{"text": found.role}],
        "owner": {"identifier": {"system": PARTY_SYSTEM, "value": found.organisation.hex()}},
    }
    return validate_resource(resource, "R5", {"Device": "device"})


def import_udi(data: bytes) -> tuple[str, str]:
    """The GTIN and serial of an untrusted FHIR ``Device``'s GS1 UDI; ``FhirError`` otherwise."""
    resource = validate_resource(load_json(data), "R5", {"Device": "device"})
    carriers = [carrier for carrier in resource.get("udiCarrier", []) if carrier.get("issuer") == GS1_DI_ISSUER]
    if len(carriers) != 1:
        raise FhirError("Device.udiCarrier", f"give exactly one UDI carrier issued by GS1 ({GS1_DI_ISSUER})")
    carrier = carriers[0]
    printed = carrier.get("carrierHRF", "")
    gtin_found, serial_found = _HRF_GTIN.search(printed), _HRF_SERIAL.search(printed)
    if gtin_found and serial_found:
        gtin, serial = gtin_found.group(1), serial_found.group(1)
    else:
        gtin, serial = carrier.get("deviceIdentifier", "").zfill(14), resource.get("serialNumber", "")
    problem = udi_problem(gtin, serial)
    if problem is not None:
        raise FhirError("Device.udiCarrier", f"{problem} (from carrierHRF, else deviceIdentifier and serialNumber)")
    return gtin, serial


def _entries(raw: dict[str, Any]) -> list[tuple[str, Any]]:
    """The resources of a single Observation or of a Bundle, each with its path."""
    if raw.get("resourceType") != "Bundle":
        return [("", raw)]
    entries = raw.get("entry")
    if not isinstance(entries, list) or not 0 < len(entries) <= READINGS_PER_BATCH_MAX:
        raise FhirError("Bundle.entry", f"a batch is 1..{READINGS_PER_BATCH_MAX} readings, one per entry")
    found = []
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise FhirError(f"Bundle.entry[{index}].resource", "missing: each entry holds one Observation")
        found.append((f"Bundle.entry[{index}].resource", resource))
    return found


def _reading(
    raw: dict[str, Any], where: str, gtin: str, serial: str, references: Mapping[str, bytes], category: str
) -> tuple[bytes, str, bytes]:
    resource = validate_resource(raw, "R5", {"Observation": "observation"}, where)
    named = udi_reference(gtin, serial)
    if "device" not in resource:
        resource["device"] = named
    elif resource["device"] != named:
        raise FhirError(
            f"{where or 'Observation'}.device",
            f"names another device: a batch holds {udi_text(gtin, serial)}'s readings; leave it out or give"
            f" {json.dumps(named)}",
        )
    try:
        clinical = clinical_data(resource, references, category)
    except FhirError as error:
        path = f"{where}{error.path.removeprefix('Observation')}" if where and error.path else error.path
        raise FhirError(path, error.reason) from None
    return clinical.patient, clinical.category, clinical.content


def import_readings(
    data: bytes,
    gtin: str,
    serial: str,
    references: Mapping[str, bytes] | None = None,
    category: str = "",
) -> Readings:
    """The readings of device ``gtin``/``serial`` in untrusted FHIR JSON (see the module docstring)."""
    readings = [
        _reading(resource, where, gtin, serial, references or {}, category)
        for where, resource in _entries(load_json(data))
    ]
    patients, categories = {reading[0] for reading in readings}, {reading[1] for reading in readings}
    if len(patients) != 1:
        raise FhirError("Observation.subject", "the readings are of different patients: a batch is one patient's")
    if len(categories) != 1:
        raise FhirError(
            "Observation.category", f"the readings are of categories {', '.join(sorted(categories))}: a batch has one"
        )
    return Readings(patients.pop(), categories.pop(), tuple(reading[2] for reading in readings))


def readings_bundle(observations: list[bytes]) -> dict[str, Any]:
    """The readings of a batch as they were stored, in a FHIR ``collection`` Bundle."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": json.loads(observation)} for observation in observations],
    }
