"""FHIR interop: the ledger's audit trail and consents out as FHIR R5 resources, and
clinical data and consents in from FHIR JSON (R5, or R4/R4B read with the R4B models).

Export. ``audit_event`` turns an ``AuditEntry`` into an R5 ``AuditEvent``: ``code``
is the p2pmed kind, ``category`` the DICOM "Patient Record" event (plus "Security
Alert" for a break-glass read), ``action`` C/R/D, ``agent`` the actor, ``patient``
and ``entity`` the patient, the record and the ledger transaction (with the block
height and the entry's category, purpose and detail), ``recorded`` the block time,
``outcome`` success, or minor failure (4) for a read the ledger refused. A read's
purpose of use is in ``authorization`` (HL7 v3 ActReason); a break-glass read also
carries ``BTG`` ("break the glass", with the reason's salted SHA-256 as its text: the
reason itself is sealed off the ledger) and severity
``warning``, so a FHIR audit repository can find every emergency access with one
search. ``site_audit_event`` does the same for an entry of a site's local audit log
(``SiteEvent``: a custodian's refusal, with outcome minor failure, or an operator's read
of a patient's trail). ``consent_resource`` turns a ``ConsentProvision`` into an R5 ``Consent``.
Both are validated by building the ``fhir.resources`` model before they are returned.

Ledger parties are not FHIR resources: a person id or an organisation key appears
as a logical reference, ``{"identifier": {"system": PARTY_SYSTEM, "value": hex}}``.

Import. ``import_resource`` reads one untrusted JSON resource: at most
``IMPORT_SIZE_MAX`` bytes of UTF-8, strict JSON (no duplicate keys, no NaN),
nested at most ``DEPTH_MAX`` deep, then validated by the ``fhir.resources`` model
of its ``resourceType`` and release. Every problem is a ``FhirError`` naming the
path (``Consent.provision[0].actor``) and what is wrong; nothing else escapes.

- ``Patient`` -> ``PatientData``: canonical JSON the site keeps. Names and other
  personal data never go on the ledger.
- ``Observation`` (category ``laboratory``, ``vital-signs`` or ``imaging`` of the
  HL7 observation-category system), ``Condition`` (-> ``condition``) and
  ``MedicationRequest`` (-> ``medication``) -> ``ClinicalData``: the patient, the
  ledger's data category, and the canonical JSON bytes to encrypt as a record.
- ``Consent`` -> a ``ConsentGrant`` body: status active, a permit, one provision
  with one actor (the grantee), one purpose (v3 ActReason), data categories (codes
  of ``CATEGORY_SYSTEM``, or the three observation categories) and the end of its
  period (a date alone means the whole of that day, UTC). Anything in the provision
  that would narrow the consent (actions, data, security labels, nested provisions)
  is refused rather than ignored: a grant on the ledger is a whole category, and
  dropping a restriction would grant more than the patient agreed to.

References to the patient and the grantee are resolved by the caller's
``references`` mapping, from a FHIR literal reference (``"Patient/123"``,
``"Organization/lab-1"``, or an absolute URL, exactly as written in the resource) to
a ledger party id; a reference with an identifier in ``PARTY_SYSTEM`` names the
party itself and needs no entry.
"""

from __future__ import annotations

import datetime
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from fhir.resources.auditevent import AuditEvent
from fhir.resources.consent import Consent
from pydantic import ValidationError

from p2pmed import strict_json
from p2pmed.crypto import PUBLIC_KEY_SIZE
from p2pmed.ledger.contracts.audit import AUDIT_KINDS, AuditEntry
from p2pmed.ledger.contracts.consent import CATEGORIES, PURPOSES, ConsentGrant, ConsentProvision

__all__ = [
    "ACT_REASON_SYSTEM",
    "AUDIT_KIND_SYSTEM",
    "CATEGORY_SYSTEM",
    "DEPTH_MAX",
    "IMPORT_SIZE_MAX",
    "OBSERVATION_CATEGORY_SYSTEM",
    "PARTY_SYSTEM",
    "RECORD_SYSTEM",
    "RELEASES",
    "SITE_AUDIT_SYSTEM",
    "TX_SYSTEM",
    "ClinicalData",
    "FhirError",
    "PatientData",
    "SiteEvent",
    "audit_event",
    "consent_resource",
    "import_resource",
    "instant",
    "parse_resource",
    "site_audit_event",
]

PARTY_SYSTEM = "urn:p2pmed:party"
"""Identifier system of ledger parties: a person id or an organisation key, as hex."""
RECORD_SYSTEM = "urn:p2pmed:record"
TX_SYSTEM = "urn:p2pmed:tx"
SITE_AUDIT_SYSTEM = "urn:p2pmed:site-audit"
"""Identifier system of a site's local audit log entries: the entry's SHA-256, as hex."""
AUDIT_KIND_SYSTEM = "urn:p2pmed:audit-kind"
CATEGORY_SYSTEM = "urn:p2pmed:data-category"
ACT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
_DICOM = "http://dicom.nema.org/resources/ontology/DCM"
_OUTCOME = "http://terminology.hl7.org/CodeSystem/audit-event-outcome"
_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
_LOINC = "http://loinc.org"

IMPORT_SIZE_MAX = 1 << 20
DEPTH_MAX = 32
RELEASES = {"R5": "fhir.resources", "R4B": "fhir.resources.R4B", "R4": "fhir.resources.R4B"}
"""FHIR release -> the package of its models; fhir.resources reads R4 with its R4B models."""
_MODULES = {
    "Patient": "patient",
    "Observation": "observation",
    "Condition": "condition",
    "MedicationRequest": "medicationrequest",
    "Consent": "consent",
}
_RECORD_CATEGORY = {"Condition": "condition", "MedicationRequest": "medication"}
_OBSERVATION_CATEGORIES = frozenset({"laboratory", "vital-signs", "imaging"})
_PROVISION_KEYS = frozenset({"id", "extension", "period", "actor", "purpose", "code", "class", "type"})
MESSAGE_LENGTH_MAX = 200
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_INSTANT_MIN_MS = (datetime.datetime(1, 1, 1, tzinfo=datetime.UTC) - _EPOCH) // datetime.timedelta(milliseconds=1)
_INSTANT_MAX_MS = (
    datetime.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=datetime.UTC) - _EPOCH
) // datetime.timedelta(milliseconds=1)


@dataclass(frozen=True)
class _Kind:
    display: str
    action: str  # FHIR AuditEventAction: C create, R read, D delete


_KINDS = {
    "consent-grant": _Kind("Consent granted", "C"),
    "consent-revoke": _Kind("Consent revoked", "D"),
    "consent-delegate": _Kind("Consent delegate named", "C"),
    "consent-undelegate": _Kind("Consent delegate removed", "D"),
    "record-write": _Kind("Record written", "C"),
    "record-read": _Kind("Record read", "R"),
    "record-read-refused": _Kind("Record read refused", "R"),
    "break-glass": _Kind("Emergency access: break the glass", "R"),
    "break-glass-review": _Kind("Emergency access reviewed", "E"),
    "record-erase": _Kind("Record erased (crypto-shredded)", "D"),
}
assert set(_KINDS) == AUDIT_KINDS, "every audit kind has a FHIR rendering"
_SITE_KINDS = {
    "custody-refused": _Kind("Custodian refused a request", "R"),
    "trail-read": _Kind("Site operator read a patient's audit trail", "R"),
    "suppressed": _Kind("Entries left out of the site audit log over a requester's budget", "E"),
    "log-recovered": _Kind("Site audit log recovered an unfinished write", "E"),
}


class FhirError(ValueError):
    """FHIR input that p2pmed does not accept: ``path`` says where, ``reason`` what is wrong."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class PatientData:
    """A FHIR Patient, validated, as canonical JSON: kept at the site, never on the ledger."""

    content: bytes


@dataclass(frozen=True)
class ClinicalData:
    """A clinical resource ready to become a record: ``content`` is the plaintext to encrypt."""

    resource_type: str
    patient: bytes
    category: str
    content: bytes


# -- export ---------------------------------------------------------------------------


def instant(time_ms: int) -> str:
    """A FHIR ``instant`` (UTC, milliseconds) for a ledger time, in integer arithmetic. FHIR
    stops at year 9999: a later time (an expiry of "never", 2**63 - 1) reads as its last
    millisecond, an earlier one than year 1 as its first."""
    clamped = min(max(time_ms, _INSTANT_MIN_MS), _INSTANT_MAX_MS)
    moment = _EPOCH + datetime.timedelta(milliseconds=clamped)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _coding(system: str, code: str, display: str = "") -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _concept(system: str, code: str, display: str = "", text: str = "") -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [_coding(system, code, display)]}
    if text:
        concept["text"] = text
    return concept


def _party(party: bytes, resource_type: str = "") -> dict[str, Any]:
    reference: dict[str, Any] = {"identifier": {"system": PARTY_SYSTEM, "value": party.hex()}}
    if resource_type:
        reference["type"] = resource_type
    return reference


def _detail(name: str, value: str) -> dict[str, Any]:
    return {"type": {"text": name}, "valueString": value}


def _entities(entry: AuditEntry) -> list[dict[str, Any]]:
    """The record (if any) and the ledger transaction, which carries the entry's details."""
    details = [_detail("height", str(entry.height))]
    details += [
        _detail(name, value)
        for name, value in (("category", entry.category), ("purpose", entry.purpose), ("detail", entry.detail))
        if value
    ]
    entities: list[dict[str, Any]] = [
        {"what": {"identifier": {"system": TX_SYSTEM, "value": entry.tx_id.hex()}}, "detail": details}
    ]
    if entry.record_id:
        record = {
            "what": {"identifier": {"system": RECORD_SYSTEM, "value": entry.record_id.hex()}},
            "role": _concept(_OBJECT_ROLE, "4", "Domain Resource"),
        }
        entities.insert(0, record)
    return entities


def _authorization(entry: AuditEntry) -> list[dict[str, Any]]:
    """A read's purpose of use; a break-glass read also says BTG, with its reason's hash."""
    if entry.kind not in ("record-read", "record-read-refused", "break-glass"):
        return []
    authorization = [_concept(ACT_REASON_SYSTEM, entry.purpose)] if entry.purpose else []
    if entry.kind == "break-glass":
        authorization.insert(0, _concept(ACT_REASON_SYSTEM, "BTG", "break the glass", entry.detail))
    return authorization


def _outcome(entry: AuditEntry) -> dict[str, str]:
    """Success, or minor failure (the request was refused, as an HTTP 4xx is) for a refused read."""
    if entry.kind == "record-read-refused":
        return _coding(_OUTCOME, "4", "Minor failure")
    return _coding(_OUTCOME, "0", "Success")


def audit_event(entry: AuditEntry) -> dict[str, Any]:
    """The FHIR R5 AuditEvent of a ledger audit entry, validated, as plain JSON."""
    kind = _KINDS[entry.kind]
    categories = [_concept(_DICOM, "110110", "Patient Record")]
    if entry.kind == "break-glass":
        categories.append(_concept(_DICOM, "110113", "Security Alert"))
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": entry.tx_id.hex(),
        "category": categories,
        "code": _concept(AUDIT_KIND_SYSTEM, entry.kind, kind.display),
        "action": kind.action,
        "severity": "warning" if entry.kind == "break-glass" else "informational",
        "occurredDateTime": instant(entry.time_ms),
        "recorded": instant(entry.time_ms),
        "outcome": {"code": _outcome(entry)},
        "patient": _party(entry.patient, "Patient"),
        "agent": [{"who": _party(entry.actor), "requestor": True}],
        "source": {"observer": {"display": "p2pmed ledger"}},
        "entity": _entities(entry),
    }
    authorization = _authorization(entry)
    if authorization:
        event["authorization"] = authorization
    AuditEvent.model_validate(event)
    return event


@dataclass(frozen=True)
class SiteEvent:
    """An entry of a site's local audit log (``p2pmed.node.site_audit``), as an AuditEvent shows it."""

    entry_sha256: str
    kind: str
    time_ms: int
    site: bytes
    agent: bytes | None
    """The validator whose node asked; None for the site's own operator."""
    refused: bool
    record_id: bytes | None
    patient: bytes | None
    details: tuple[tuple[str, str], ...]


def site_audit_event(event: SiteEvent) -> dict[str, Any]:
    """The FHIR R5 AuditEvent of a site audit log entry, validated, as plain JSON: outcome minor
    failure (4) and severity warning for a refusal."""
    kind = _SITE_KINDS.get(event.kind, _Kind(event.kind, "E"))
    if event.kind in ("custody-refused", "trail-read"):
        categories = [_concept(_DICOM, "110110", "Patient Record")]
    else:
        categories = [_concept(_DICOM, "110100", "Application Activity")]
    if event.refused:
        categories.append(_concept(_DICOM, "110113", "Security Alert"))
    site = _party(event.site, "Device")
    who = _party(event.agent) if event.agent is not None else {**site, "display": "the site's operator"}
    entry: dict[str, Any] = {"what": {"identifier": {"system": SITE_AUDIT_SYSTEM, "value": event.entry_sha256}}}
    if event.details:
        entry["detail"] = [_detail(name, value) for name, value in event.details]
    entities = [entry]
    if event.record_id is not None:
        entities.insert(
            0,
            {
                "what": {"identifier": {"system": RECORD_SYSTEM, "value": event.record_id.hex()}},
                "role": _concept(_OBJECT_ROLE, "4", "Domain Resource"),
            },
        )
    audit: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event.entry_sha256,
        "category": categories,
        "code": _concept(AUDIT_KIND_SYSTEM, event.kind, kind.display),
        "action": kind.action,
        "severity": "warning" if event.refused else "informational",
        "occurredDateTime": instant(event.time_ms),
        "recorded": instant(event.time_ms),
        "outcome": {
            "code": _coding(_OUTCOME, "4", "Minor failure") if event.refused else _coding(_OUTCOME, "0", "Success")
        },
        "agent": [{"who": who, "requestor": True}],
        "source": {"observer": {**site, "display": "p2pmed site audit log"}},
        "entity": entities,
    }
    if event.patient is not None:
        audit["patient"] = _party(event.patient, "Patient")
    AuditEvent.model_validate(audit)
    return audit


def consent_resource(provision: ConsentProvision) -> dict[str, Any]:
    """The FHIR R5 Consent of one consent in force (one grantee, one category), validated, as plain JSON."""
    granted = instant(provision.granted_ms)
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "identifier": [{"system": TX_SYSTEM, "value": provision.tx_id.hex()}],
        "status": "active",
        "category": [_concept(_LOINC, "59284-0", "Patient Consent")],
        "subject": _party(provision.patient, "Patient"),
        "date": granted[:10],
        "grantor": [_party(provision.granted_by)],
        "grantee": [_party(provision.grantee)],
        "decision": "permit",
        "provision": [
            {
                "period": {"start": granted, "end": instant(provision.expires_ms)},
                "actor": [
                    {
                        "role": _concept(_PARTICIPATION, "IRCP", "information recipient"),
                        "reference": _party(provision.grantee),
                    }
                ],
                "purpose": [_coding(ACT_REASON_SYSTEM, provision.purpose)],
                "code": [_concept(CATEGORY_SYSTEM, provision.category)],
            }
        ],
    }
    Consent.model_validate(consent)
    return consent


# -- import: parsing untrusted JSON -------------------------------------------------------------


def _load_json(data: bytes) -> dict[str, Any]:
    if len(data) > IMPORT_SIZE_MAX:
        raise FhirError("", f"{len(data)} bytes is more than one resource may have ({IMPORT_SIZE_MAX} bytes)")
    try:
        value = strict_json.loads(data, DEPTH_MAX)
    except strict_json.JsonProblem as problem:
        raise FhirError("", str(problem)) from None
    if not isinstance(value, dict):
        raise FhirError("", "a FHIR resource is a JSON object")
    return value


def _error_path(resource_type: str, location: tuple[int | str, ...]) -> str:
    path = resource_type
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse_resource(data: bytes, release: str = "R5") -> dict[str, Any]:
    """One validated FHIR resource of a kind p2pmed imports, as plain JSON; ``FhirError`` otherwise."""
    if release not in RELEASES:
        raise FhirError("", f"unknown FHIR release {release[:20]!r}; known: {', '.join(RELEASES)}")
    raw = _load_json(data)
    resource_type = raw.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in _MODULES:
        shown = repr(resource_type)[:60] if resource_type is not None else "missing"
        raise FhirError("resourceType", f"{shown}: p2pmed imports {', '.join(_MODULES)}")
    model = getattr(importlib.import_module(f"{RELEASES[release]}.{_MODULES[resource_type]}"), resource_type)
    try:
        validated = model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        message = " ".join(str(first["msg"]).split())[:MESSAGE_LENGTH_MAX]
        raise FhirError(_error_path(resource_type, first["loc"]), f"{message} (FHIR {release})") from None
    resource: dict[str, Any] = json.loads(validated.model_dump_json(exclude_comments=True))
    return resource


def _canonical(resource: dict[str, Any]) -> bytes:
    """The bytes a record holds: sorted keys, no whitespace, UTF-8, so one resource has one encoding."""
    return json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- import: mapping to the ledger -----------------------------------------------------------------


def _party_of(reference: dict[str, Any], path: str, references: Mapping[str, bytes]) -> bytes:
    identifier = reference.get("identifier") or {}
    if identifier.get("system") == PARTY_SYSTEM:
        value = str(identifier.get("value", ""))
        try:
            party = bytes.fromhex(value)
        except ValueError:
            party = b""
        if len(party) != PUBLIC_KEY_SIZE:
            raise FhirError(f"{path}.identifier.value", f"a p2pmed party id is {2 * PUBLIC_KEY_SIZE} hex digits")
        return party
    literal = reference.get("reference")
    if literal is None:
        raise FhirError(
            path, f"give a literal reference the caller maps to a ledger party, or an identifier in {PARTY_SYSTEM}"
        )
    if literal not in references:
        raise FhirError(f"{path}.reference", f"{literal[:80]!r} is not mapped to a person id or organisation key")
    return references[literal]


def _observation_category(resource: dict[str, Any]) -> str:
    found: set[str] = {
        coding["code"]
        for concept in resource.get("category", [])
        for coding in concept.get("coding", [])
        if coding.get("system") == OBSERVATION_CATEGORY_SYSTEM and coding.get("code") in _OBSERVATION_CATEGORIES
    }
    if not found:
        known = ", ".join(sorted(_OBSERVATION_CATEGORIES))
        raise FhirError("Observation.category", f"no coding of {OBSERVATION_CATEGORY_SYSTEM} with code {known}")
    if len(found) > 1:
        raise FhirError(
            "Observation.category", f"codes {', '.join(sorted(found))} disagree: a record has one data category"
        )
    return found.pop()


def _clinical(resource: dict[str, Any], references: Mapping[str, bytes]) -> ClinicalData:
    kind = resource["resourceType"]
    category = _observation_category(resource) if kind == "Observation" else _RECORD_CATEGORY[kind]
    subject = resource.get("subject")
    if subject is None:
        raise FhirError(f"{kind}.subject", "missing: a record belongs to one patient; reference the Patient")
    patient = _party_of(subject, f"{kind}.subject", references)
    return ClinicalData(kind, patient, category, _canonical(resource))


def _require_value(value: Any, expected: str, path: str) -> None:
    if value != expected:
        raise FhirError(
            path, f"{'missing' if value is None else repr(value)[:40]}: the ledger holds only {expected!r} consents"
        )


def _one(items: list[Any], path: str, what: str) -> Any:
    if len(items) != 1:
        raise FhirError(path, f"give exactly one {what}, not {len(items)}")
    return items[0]


def _category_of(coding: dict[str, Any], path: str) -> str:
    system, code = coding.get("system"), coding.get("code")
    if system == CATEGORY_SYSTEM and code in CATEGORIES:
        return str(code)
    if system == OBSERVATION_CATEGORY_SYSTEM and code in _OBSERVATION_CATEGORIES:
        return str(code)
    known = ", ".join(sorted(CATEGORIES))
    raise FhirError(path, f"{system}|{code} is not a p2pmed data category; use {CATEGORY_SYSTEM} with one of {known}")


def _categories(provision: dict[str, Any], path: str) -> tuple[str, ...]:
    codings = [(coding, f"{path}.class[{index}]") for index, coding in enumerate(provision.get("class", []))]
    for index, concept in enumerate(provision.get("code", [])):
        codings += [
            (coding, f"{path}.code[{index}].coding[{position}]")
            for position, coding in enumerate(concept.get("coding", []))
        ]
    if not codings:
        raise FhirError(f"{path}.code", f"missing: name the data categories, as codes of {CATEGORY_SYSTEM}")
    return tuple(sorted({_category_of(coding, where) for coding, where in codings}))


def _purpose(provision: dict[str, Any], path: str) -> str:
    coding = _one(provision.get("purpose", []), f"{path}.purpose", "purpose of use")
    if coding.get("system") != ACT_REASON_SYSTEM or coding.get("code") not in PURPOSES:
        raise FhirError(
            f"{path}.purpose[0]", f"expected a code of {ACT_REASON_SYSTEM}, one of {', '.join(sorted(PURPOSES))}"
        )
    return str(coding["code"])


def _end_ms(text: str, path: str) -> int:
    """The ledger expiry (the first millisecond a consent no longer holds) of a FHIR period
    end: a date alone holds through that day, UTC; a date and time is taken as the expiry,
    which is what ``consent_resource`` writes, so an exported consent imports unchanged."""
    try:
        if len(text) == 10:
            day = datetime.date.fromisoformat(text)
            moment = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC) + datetime.timedelta(days=1)
        else:
            moment = datetime.datetime.fromisoformat(text)
            if moment.tzinfo is None:
                raise ValueError
    except (ValueError, OverflowError):
        raise FhirError(
            path, f"{text[:40]!r}: give a full date (YYYY-MM-DD) or a date and time with a time zone"
        ) from None
    return (moment - _EPOCH) // datetime.timedelta(milliseconds=1)


def _expiry(resource: dict[str, Any], provision: dict[str, Any], path: str) -> int:
    for period, where in (
        (provision.get("period"), f"{path}.period.end"),
        (resource.get("period"), "Consent.period.end"),
    ):
        if period and "end" in period:
            return _end_ms(period["end"], where)
    raise FhirError(f"{path}.period.end", "missing: a consent on the ledger always expires; give the date it ends")


def _provision(resource: dict[str, Any], release: str) -> tuple[dict[str, Any], str]:
    """The one provision (R5 lists them, R4/R4B has one), with its path, checked for what we cannot honour."""
    if release == "R5":
        provision, path = _one(resource.get("provision", []), "Consent.provision", "provision"), "Consent.provision[0]"
    else:
        provision, path = resource.get("provision"), "Consent.provision"
        if provision is None:
            raise FhirError(path, "missing: give the provision that says who may see what")
        _require_value(provision.get("type"), "permit", f"{path}.type")
    for key in provision:
        if key not in _PROVISION_KEYS:
            raise FhirError(
                f"{path}.{key}",
                "not supported: a ledger grant covers whole data categories; remove it or split the consent",
            )
    return provision, path


def _consent_grant(resource: dict[str, Any], release: str, references: Mapping[str, bytes]) -> ConsentGrant:
    if "modifierExtension" in resource:
        raise FhirError("Consent.modifierExtension", "not supported: it could change what the consent means")
    _require_value(resource.get("status"), "active", "Consent.status")
    if release == "R5":
        _require_value(resource.get("decision"), "permit", "Consent.decision")
    subject_key = "subject" if release == "R5" else "patient"
    subject = resource.get(subject_key)
    if subject is None:
        raise FhirError(f"Consent.{subject_key}", "missing: reference the patient who consents")
    patient = _party_of(subject, f"Consent.{subject_key}", references)
    provision, path = _provision(resource, release)
    actor = _one(provision.get("actor", []), f"{path}.actor", "actor (the grantee)")
    if "reference" not in actor:
        raise FhirError(f"{path}.actor[0].reference", "missing: reference the grantee, a person or an organisation")
    grantee = _party_of(actor["reference"], f"{path}.actor[0].reference", references)
    return ConsentGrant(
        patient, grantee, _categories(provision, path), _purpose(provision, path), _expiry(resource, provision, path)
    )


def import_resource(
    data: bytes, release: str = "R5", references: Mapping[str, bytes] = MappingProxyType({})
) -> PatientData | ClinicalData | ConsentGrant:
    """Read one FHIR JSON resource and map it to what the ledger takes (see the module docstring)."""
    resource = parse_resource(data, release)
    if resource["resourceType"] == "Patient":
        return PatientData(_canonical(resource))
    if resource["resourceType"] == "Consent":
        return _consent_grant(resource, release, references)
    return _clinical(resource, references)
