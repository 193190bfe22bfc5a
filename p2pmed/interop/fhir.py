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
search. ``consent_resource`` turns a ``ConsentProvision`` (a grant) into an R5
``Consent`` with ``decision`` deny and one provision, the permit that excepts from it;
``deny_resource`` turns a ``DenyProvision`` into one with ``decision`` permit and one
provision, the deny (R5 has no ``provision.type``: a provision is always the exception
to what encloses it, see below). ``site_audit_event`` turns an entry of a site's
local audit log (``SiteEvent``: a custodian's refusal, with outcome minor failure, or
an operator's read of a patient's trail) into an AuditEvent. All are validated by
building the ``fhir.resources`` model before they are returned.

Ledger parties are not FHIR resources: a person id or an organisation id appears
as a logical reference, ``{"identifier": {"system": PARTY_SYSTEM, "value": hex}}``.

Import. ``import_resource`` reads one untrusted JSON resource: at most
``IMPORT_SIZE_MAX`` bytes of UTF-8, strict JSON (no duplicate keys, no NaN),
nested at most ``DEPTH_MAX`` deep, then validated by the ``fhir.resources`` model
of its ``resourceType`` and release. Every problem is a ``FhirError`` naming the
path (``Consent.provision[0].actor``) and what is wrong; nothing else escapes.

- ``Patient`` -> ``PatientData``: canonical JSON the site keeps. Names and other
  personal data never go on the ledger.
- ``Observation`` (category ``laboratory``, ``vital-signs`` or ``imaging`` of the
  HL7 observation-category system; without one, the category the importer names, or the
  one its LOINC code implies, ``p2pmed.interop.loinc``), ``Condition`` (-> ``condition``) and
  ``MedicationRequest`` (-> ``medication``) -> ``ClinicalData``: the patient, the
  ledger's data category, and the canonical JSON bytes to encrypt as a record.
- ``Consent`` (status active) -> ``ImportedConsent``: the ``consent.grant`` and
  ``consent.deny`` transactions it means, in the order of its provisions.

How a Consent reads, per release. Both releases define a provision as "an exception to
the base policy of this consent" and a nested provision as an exception to the rule it
sits in. In R5 the base is ``Consent.decision`` ("permit or deny, as default") and
``provision`` is a list without a type, so the root provisions are the opposite of the
decision and each level of nesting flips again (HL7's R5 examples: consent-example-notThem
withholds from one practitioner with ``decision`` permit and a provision naming her). In
R4 the base is ``Consent.policyRule`` (v3 ActCode OPTIN or OPTINR: permit; OPTOUT or
OPTOUTE: deny) and the one root provision is its exception. R4 defines
``provision.type`` as "not permitted in root rule, required in all nested rules", yet no
invariant enforces it and HL7's own consent-example-notOrg has a root ``type`` deny, so a
root ``type`` is honoured (and needed when ``policyRule`` is another code); a nested
provision without one is read as the exception to its parent.

Each provision covers what encloses it, narrowed by its own ``actor`` (readers: a
role, if coded, of v3 ParticipationType IRCP or PRCP), ``class`` (R4) and ``code``
(data categories: codes of ``CATEGORY_SYSTEM``, or the three observation categories),
``purpose`` (v3 ActReason), ``action`` (it must include consentaction ``access``: the
ledger decides reads) and ``period`` (already started; its end is the expiry, a date
alone meaning the whole of that day, UTC; a root provision's period replaces R5's
``Consent.period``, a nested one's is cut to its parent's). Left out, each covers all. A
permit becomes one grant per reader (it must name readers and end); a deny one deny per
reader, or of everyone (without an end it holds until lifted). On the ledger a deny
overrides every permit, which is FHIR's deny nested in a permit; what the ledger cannot
hold is refused, naming the path and why, rather than recorded as something else:
- a permit nested in a deny (the ledger cannot except from a deny; a permit at the root
  of an R5 ``decision`` deny is fine: the base deny is the ledger's own default, nothing
  is readable without a consent, so it becomes no transaction of its own; a ``decision``
  deny without provisions denies everyone everything);
- a ``decision`` permit without provisions (a grant to everyone), a permit naming no reader;
- ``data`` (single resources), ``dataPeriod``, ``securityLabel``, ``documentType``,
  ``resourceType``, ``expression``, actors in other roles (custodian, author), periods
  that start later, and more than ``CONSENT_TRANSACTIONS_MAX`` transactions.

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
from p2pmed.interop.loinc import LOINC_SYSTEM, category_of_code
from p2pmed.ledger.contracts.audit import AUDIT_KINDS, AuditEntry
from p2pmed.ledger.contracts.consent import (
    CATEGORIES,
    EVERYONE,
    NEVER_MS,
    PURPOSES,
    ConsentDeny,
    ConsentGrant,
    ConsentProvision,
    DenyProvision,
)

__all__ = [
    "ACT_CODE_SYSTEM",
    "ACT_REASON_SYSTEM",
    "AUDIT_KIND_SYSTEM",
    "CATEGORY_SYSTEM",
    "CONSENT_ACTION_SYSTEM",
    "CONSENT_TRANSACTIONS_MAX",
    "DEPTH_MAX",
    "IMPORT_SIZE_MAX",
    "OBSERVATION_CATEGORY_SYSTEM",
    "PARTY_SYSTEM",
    "RECORD_SYSTEM",
    "RELEASES",
    "SITE_AUDIT_SYSTEM",
    "TX_SYSTEM",
    "ClinicalData",
    "ConsentTx",
    "FhirError",
    "ImportedConsent",
    "PatientData",
    "SiteEvent",
    "audit_event",
    "canonical_json",
    "clinical_data",
    "consent_resource",
    "deny_resource",
    "import_resource",
    "instant",
    "load_json",
    "parse_resource",
    "site_audit_event",
    "validate_resource",
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
_PROVISION_KEYS_R5 = frozenset({"id", "extension", "period", "actor", "action", "purpose", "code", "provision"})
_PROVISION_KEYS_R4 = _PROVISION_KEYS_R5 | {"type", "class"}
_NOT_EXPRESSIBLE = {
    "data": "the ledger's consents and denies cover whole data categories, not single resources",
    "dataPeriod": "the ledger cannot tell data by the time it is about",
    "securityLabel": "the ledger does not label data by sensitivity",
    "documentType": f"the ledger knows data by category: name them in provision.code, as codes of {CATEGORY_SYSTEM}",
    "resourceType": f"the ledger knows data by category: name them in provision.code, as codes of {CATEGORY_SYSTEM}",
    "expression": "the ledger does not evaluate expressions",
    "modifierExtension": "it could change what the provision means",
}
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONSENT_ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"
_POLICY_BASES = {"OPTIN": "permit", "OPTINR": "permit", "OPTOUT": "deny", "OPTOUTE": "deny"}
"""An R4 ``policyRule`` (v3 ActCode consent directive) -> the base its root provision excepts from."""
_READER_ROLES = frozenset({(_PARTICIPATION, "IRCP"), (_PARTICIPATION, "PRCP")})
CONSENT_TRANSACTIONS_MAX = 64
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
    "consent-deny": _Kind("Consent deny recorded", "C"),
    "consent-undeny": _Kind("Consent deny lifted", "D"),
    "consent-delegate": _Kind("Consent delegate named", "C"),
    "consent-undelegate": _Kind("Consent delegate removed", "D"),
    "consent-study": _Kind("Research consent to a study given", "C"),
    "consent-study-withdraw": _Kind("Research consent to a study withdrawn", "D"),
    "record-write": _Kind("Record written", "C"),
    "record-read": _Kind("Record read", "R"),
    "record-read-refused": _Kind("Record read refused", "R"),
    "break-glass": _Kind("Emergency access: break the glass", "R"),
    "break-glass-review": _Kind("Emergency access reviewed", "E"),
    "record-erase": _Kind("Record erased (crypto-shredded)", "D"),
    "research-export": _Kind("Disclosed, de-identified, in a research data set", "R"),
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
class ConsentTx:
    """One transaction a FHIR Consent means: ``consent.grant`` or ``consent.deny``, and the
    provision it comes from (``Consent.provision[0].provision[1]``)."""

    tx_type: str
    body: ConsentGrant | ConsentDeny
    path: str


@dataclass(frozen=True)
class ImportedConsent:
    """The grants and denies a FHIR Consent means, in the order of its provisions."""

    transactions: tuple[ConsentTx, ...]


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


def _consent_json(
    provision: ConsentProvision | DenyProvision, decision: str, start_ms: int, by: bytes
) -> dict[str, Any]:
    """One ledger entry as an R5 Consent whose single provision is the exception to ``decision``."""
    start = instant(start_ms)
    period = (
        {"start": start} if provision.expires_ms == NEVER_MS else {"start": start, "end": instant(provision.expires_ms)}
    )
    exception: dict[str, Any] = {
        "period": period,
        "purpose": [_coding(ACT_REASON_SYSTEM, provision.purpose)],
        "code": [_concept(CATEGORY_SYSTEM, provision.category)],
    }
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "identifier": [{"system": TX_SYSTEM, "value": provision.tx_id.hex()}],
        "status": "active",
        "category": [_concept(LOINC_SYSTEM, "59284-0", "Patient Consent")],
        "subject": _party(provision.patient, "Patient"),
        "date": start[:10],
        "grantor": [_party(by)],
        "decision": decision,
        "provision": [exception],
    }
    if provision.grantee:
        consent["grantee"] = [_party(provision.grantee)]
        role = _concept(_PARTICIPATION, "IRCP", "information recipient")
        exception["actor"] = [{"role": role, "reference": _party(provision.grantee)}]
    Consent.model_validate(consent)
    return consent


def consent_resource(provision: ConsentProvision) -> dict[str, Any]:
    """The FHIR R5 Consent of one consent in force (one grantee, one category, one purpose),
    validated, as plain JSON: ``decision`` deny (nothing is shared by default) and one
    provision, the permit that excepts from it."""
    return _consent_json(provision, "deny", provision.granted_ms, provision.granted_by)


def deny_resource(denial: DenyProvision) -> dict[str, Any]:
    """The FHIR R5 Consent of one deny in force: ``decision`` permit (whatever the patient's
    consents permit) and one provision, the deny that excepts from it; no actor for a deny
    of everyone."""
    return _consent_json(denial, "permit", denial.denied_ms, denial.denied_by)


# -- import: parsing untrusted JSON -------------------------------------------------------------


def load_json(data: bytes) -> dict[str, Any]:
    """Untrusted bytes as one JSON object: bounded in size and depth, strict; ``FhirError`` otherwise."""
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
    return validate_resource(load_json(data), release, _MODULES)


def validate_resource(raw: dict[str, Any], release: str, modules: Mapping[str, str], where: str = "") -> dict[str, Any]:
    """``raw`` validated by the ``fhir.resources`` model of its type, one of ``modules`` (resource
    type -> module name), as plain JSON; a problem is a ``FhirError`` whose path starts at
    ``where`` (``Bundle.entry[2].resource``), else at the resource type."""
    if release not in RELEASES:
        raise FhirError("", f"unknown FHIR release {release[:20]!r}; known: {', '.join(RELEASES)}")
    resource_type = raw.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in modules:
        shown = repr(resource_type)[:60] if resource_type is not None else "missing"
        raise FhirError(
            f"{where}.resourceType" if where else "resourceType", f"{shown}: p2pmed imports {', '.join(modules)}"
        )
    model = getattr(importlib.import_module(f"{RELEASES[release]}.{modules[resource_type]}"), resource_type)
    try:
        validated = model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        message = " ".join(str(first["msg"]).split())[:MESSAGE_LENGTH_MAX]
        raise FhirError(_error_path(where or resource_type, first["loc"]), f"{message} (FHIR {release})") from None
    resource: dict[str, Any] = json.loads(validated.model_dump_json(exclude_comments=True))
    return resource


def canonical_json(resource: dict[str, Any]) -> bytes:
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


def _observation_category(resource: dict[str, Any], named: str) -> str:
    """The category coded in the resource, else (``category`` is optional in FHIR) the one
    ``named`` by the importing user, else the one its LOINC code implies (``loinc``)."""
    found: set[str] = {
        coding["code"]
        for concept in resource.get("category", [])
        for coding in concept.get("coding", [])
        if coding.get("system") == OBSERVATION_CATEGORY_SYSTEM and coding.get("code") in _OBSERVATION_CATEGORIES
    }
    if len(found) > 1:
        raise FhirError(
            "Observation.category", f"codes {', '.join(sorted(found))} disagree: a record has one data category"
        )
    if found:
        return found.pop()
    if named and named not in CATEGORIES:
        raise FhirError("", f"unknown data category {named[:40]!r}; known: {', '.join(sorted(CATEGORIES))}")
    codes = sorted(
        coding["code"]
        for coding in resource.get("code", {}).get("coding", [])
        if coding.get("system") == LOINC_SYSTEM and "code" in coding
    )
    derived = {code: category for code in codes if (category := category_of_code(code)) is not None}
    if len(set(derived.values())) > 1:
        raise FhirError("Observation.code", f"LOINC codes {', '.join(derived)} imply different data categories")
    if derived:
        code, category = next(iter(derived.items()))
        if named and named != category:
            raise FhirError("Observation.code", f"LOINC {code} is a {category} code, not {named}")
        return category
    if named:
        return named
    known = ", ".join(sorted(_OBSERVATION_CATEGORIES))
    raise FhirError(
        "Observation.category",
        f"no coding of {OBSERVATION_CATEGORY_SYSTEM} with code {known}, and no LOINC code of the resource implies"
        " one: name the data category (--category)",
    )


def clinical_data(resource: dict[str, Any], references: Mapping[str, bytes], category: str = "") -> ClinicalData:
    """A validated clinical resource as the record it becomes (``category``: for an Observation without one)."""
    kind = resource["resourceType"]
    category = _observation_category(resource, category) if kind == "Observation" else _RECORD_CATEGORY[kind]
    subject = resource.get("subject")
    if subject is None:
        raise FhirError(f"{kind}.subject", "missing: a record belongs to one patient; reference the Patient")
    patient = _party_of(subject, f"{kind}.subject", references)
    return ClinicalData(kind, patient, category, canonical_json(resource))


def _require_value(value: Any, expected: str, path: str) -> None:
    if value != expected:
        raise FhirError(
            path, f"{'missing' if value is None else repr(value)[:40]}: the ledger holds only {expected!r} consents"
        )


def _category_of(coding: dict[str, Any], path: str) -> str:
    system, code = coding.get("system"), coding.get("code")
    if system == CATEGORY_SYSTEM and code in CATEGORIES:
        return str(code)
    if system == OBSERVATION_CATEGORY_SYSTEM and code in _OBSERVATION_CATEGORIES:
        return str(code)
    known = ", ".join(sorted(CATEGORIES))
    raise FhirError(path, f"{system}|{code} is not a p2pmed data category; use {CATEGORY_SYSTEM} with one of {known}")


def _categories(provision: dict[str, Any], path: str) -> frozenset[str]:
    """The data categories a provision names in ``class`` (R4) and ``code``; empty: it names none."""
    codings = [(coding, f"{path}.class[{index}]") for index, coding in enumerate(provision.get("class", []))]
    for index, concept in enumerate(provision.get("code", [])):
        codings += [
            (coding, f"{path}.code[{index}].coding[{position}]")
            for position, coding in enumerate(concept.get("coding", []))
        ]
    return frozenset(_category_of(coding, where) for coding, where in codings)


def _purposes(provision: dict[str, Any], path: str) -> frozenset[str]:
    """The purposes of use a provision names; empty: it names none."""
    found = set()
    for index, coding in enumerate(provision.get("purpose", [])):
        if coding.get("system") != ACT_REASON_SYSTEM or coding.get("code") not in PURPOSES:
            raise FhirError(
                f"{path}.purpose[{index}]",
                f"expected a code of {ACT_REASON_SYSTEM}, one of {', '.join(sorted(PURPOSES))}",
            )
        found.add(str(coding["code"]))
    return frozenset(found)


def _moment_ms(text: str, path: str, end: bool) -> int:
    """A FHIR period bound as ledger time. A date alone is the whole of that day, UTC: as a
    start its first millisecond, as an end the first millisecond after it (the ledger's
    expiry, the first moment a consent no longer holds). A date and time is taken as it is,
    which is what ``consent_resource`` writes, so an exported consent imports unchanged."""
    try:
        if len(text) == 10:
            day = datetime.date.fromisoformat(text)
            moment = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
            moment += datetime.timedelta(days=1 if end else 0)
        else:
            moment = datetime.datetime.fromisoformat(text)
            if moment.tzinfo is None:
                raise ValueError
    except (ValueError, OverflowError):
        raise FhirError(
            path, f"{text[:40]!r}: give a full date (YYYY-MM-DD) or a date and time with a time zone"
        ) from None
    return (moment - _EPOCH) // datetime.timedelta(milliseconds=1)


@dataclass(frozen=True)
class _Scope:
    """What a provision covers once its ancestors have narrowed it."""

    actors: tuple[bytes, ...] | None  # None: everyone
    categories: frozenset[str]
    purposes: frozenset[str]
    end_ms: int | None  # None: no end


def _opposite(decision: str) -> str:
    return "deny" if decision == "permit" else "permit"


class _ConsentReader:
    """Walks a Consent's provision tree: each provision is an exception to its parent (the
    root ones to the Consent's base decision), narrowed by its ancestors, and becomes a grant
    (a permit) or a deny where it excepts; what the ledger cannot hold is a ``FhirError``."""

    def __init__(self, release: str, patient: bytes, references: Mapping[str, bytes], now_ms: int) -> None:
        self.release, self.patient, self.references, self.now_ms = release, patient, references, now_ms
        self.keys = _PROVISION_KEYS_R5 if release == "R5" else _PROVISION_KEYS_R4
        self.transactions: list[ConsentTx] = []

    def walk(
        self,
        provision: dict[str, Any],
        path: str,
        effect: str,
        parent: _Scope,
        parent_effect: str,
        denied_above: str = "",
        root: bool = True,
    ) -> None:
        """Read ``provision``, whose effect is ``effect`` and whose parent's is ``parent_effect``
        (the base decision, for a root provision), and the provisions nested in it. ``denied_above``
        is the path of the nearest enclosing provision that became a deny, if any. A nested
        provision of its parent's own effect excepts nothing: it only narrows what is nested in it."""
        self._check_keys(provision, path)
        scope = self._narrow(provision, path, parent, root)
        excepts = effect != parent_effect
        if excepts and effect == "permit":
            if denied_above:
                raise FhirError(
                    path,
                    f"a permit inside the deny of {denied_above}: a deny on the ledger overrides every permit, so"
                    " it cannot keep this exception; record the deny narrower instead",
                )
            self.grant(scope, path)
        elif excepts:
            self.deny(scope, path)
            denied_above = path
        for index, child in enumerate(provision.get("provision", [])):
            declared = child.get("type") if self.release != "R5" else None
            where = f"{path}.provision[{index}]"
            self.walk(child, where, declared or _opposite(effect), scope, effect, denied_above, root=False)

    def _check_keys(self, provision: dict[str, Any], path: str) -> None:
        for key in provision:
            if key not in self.keys:
                why = _NOT_EXPRESSIBLE.get(key, "not a provision element the ledger can honour")
                raise FhirError(f"{path}.{key}", f"not supported: {why}")

    def _narrow(self, provision: dict[str, Any], path: str, parent: _Scope, root: bool) -> _Scope:
        _check_actions(provision, path)
        actors = self._actors(provision, path)
        if actors is None:
            actors = parent.actors
        elif parent.actors is not None and not set(actors) <= set(parent.actors):
            raise FhirError(f"{path}.actor", "names a party its enclosing provision does not cover")
        categories = _categories(provision, path) or parent.categories
        if not categories <= parent.categories:
            raise FhirError(f"{path}.code", "names a data category its enclosing provision does not cover")
        purposes = _purposes(provision, path) or parent.purposes
        if not purposes <= parent.purposes:
            raise FhirError(f"{path}.purpose", "names a purpose its enclosing provision does not cover")
        end_ms = self.period_end(provision.get("period"), f"{path}.period")
        if end_ms is None or (not root and parent.end_ms is not None and parent.end_ms < end_ms):
            end_ms = parent.end_ms  # a root provision's own period replaces the Consent's (R5 Consent.period)
        return _Scope(actors, categories, purposes, end_ms)

    def period_end(self, period: dict[str, Any] | None, path: str) -> int | None:
        """The end of ``period`` (None if it has none), after checking that it has started."""
        if not period:
            return None
        if "start" in period and _moment_ms(period["start"], f"{path}.start", end=False) > self.now_ms:
            raise FhirError(
                f"{path}.start",
                f"{period['start'][:40]}: a consent or deny on the ledger holds from the block that orders it;"
                " import it once it has started",
            )
        return _moment_ms(period["end"], f"{path}.end", end=True) if "end" in period else None

    def _actors(self, provision: dict[str, Any], path: str) -> tuple[bytes, ...] | None:
        actors = provision.get("actor", [])
        if not actors:
            return None
        parties: dict[bytes, None] = {}
        for index, actor in enumerate(actors):
            where = f"{path}.actor[{index}]"
            _check_role(actor.get("role"), f"{where}.role")
            if "reference" not in actor:
                raise FhirError(f"{where}.reference", "missing: reference the reader, a person or an organisation")
            parties[_party_of(actor["reference"], f"{where}.reference", self.references)] = None
        return tuple(parties)

    def _add(self, tx_type: str, body: ConsentGrant | ConsentDeny, path: str) -> None:
        if len(self.transactions) >= CONSENT_TRANSACTIONS_MAX:
            raise FhirError(path, f"more than {CONSENT_TRANSACTIONS_MAX} grants and denies in one Consent; split it")
        self.transactions.append(ConsentTx(tx_type, body, path))

    def grant(self, scope: _Scope, path: str) -> None:
        if scope.actors is None:
            raise FhirError(
                f"{path}.actor",
                "missing: a permit on the ledger names who may read (a person or an organisation), never everyone",
            )
        if scope.end_ms is None:
            raise FhirError(
                f"{path}.period.end", "missing: a consent on the ledger always expires; give the date it ends"
            )
        for grantee in scope.actors:
            grant = ConsentGrant(
                self.patient, grantee, tuple(sorted(scope.categories)), tuple(sorted(scope.purposes)), scope.end_ms
            )
            self._add("consent.grant", grant, path)

    def deny(self, scope: _Scope, path: str) -> None:
        end_ms = NEVER_MS if scope.end_ms is None else scope.end_ms
        for grantee in scope.actors or (EVERYONE,):
            deny = ConsentDeny(
                self.patient, grantee, tuple(sorted(scope.categories)), tuple(sorted(scope.purposes)), end_ms
            )
            self._add("consent.deny", deny, path)


def _check_actions(provision: dict[str, Any], path: str) -> None:
    """A provision that names actions must name reading (consentaction ``access``): the ledger
    decides reads, so its consents and denies are about nothing else."""
    actions = provision.get("action", [])
    codes = {(coding.get("system"), coding.get("code")) for concept in actions for coding in concept.get("coding", [])}
    if actions and (CONSENT_ACTION_SYSTEM, "access") not in codes:
        raise FhirError(
            f"{path}.action",
            f"the ledger's consents and denies are about reading ({CONSENT_ACTION_SYSTEM} access); this provision"
            " does not name it",
        )


def _check_role(role: dict[str, Any] | None, path: str) -> None:
    for index, coding in enumerate((role or {}).get("coding", [])):
        if (coding.get("system"), coding.get("code")) not in _READER_ROLES:
            raise FhirError(
                f"{path}.coding[{index}]",
                f"{coding.get('system')}|{coding.get('code')}: a provision's actor on the ledger is who reads"
                f" ({_PARTICIPATION} IRCP or PRCP); another role, such as the custodian (CST) or the author (AUT),"
                " would say whose data, which the ledger cannot tell",
            )


def _r4_base(resource: dict[str, Any]) -> str | None:
    """An R4 Consent's base decision, from ``policyRule`` (v3 ActCode consent directives)."""
    bases = {
        _POLICY_BASES[coding["code"]]
        for coding in (resource.get("policyRule") or {}).get("coding", [])
        if coding.get("system") == ACT_CODE_SYSTEM and coding.get("code") in _POLICY_BASES
    }
    if len(bases) > 1:
        raise FhirError("Consent.policyRule", "codes disagree on whether the base policy permits or denies")
    return bases.pop() if bases else None


def _consent(resource: dict[str, Any], release: str, references: Mapping[str, bytes], now_ms: int) -> ImportedConsent:
    if "modifierExtension" in resource:
        raise FhirError("Consent.modifierExtension", "not supported: it could change what the consent means")
    _require_value(resource.get("status"), "active", "Consent.status")
    subject_key = "subject" if release == "R5" else "patient"
    subject = resource.get(subject_key)
    if subject is None:
        raise FhirError(f"Consent.{subject_key}", "missing: reference the patient who consents")
    reader = _ConsentReader(release, _party_of(subject, f"Consent.{subject_key}", references), references, now_ms)
    scope = _Scope(None, CATEGORIES, PURPOSES, reader.period_end(resource.get("period"), "Consent.period"))
    if release == "R5":
        decision = resource.get("decision")
        if decision not in ("permit", "deny"):
            raise FhirError("Consent.decision", "missing: say whether the Consent permits or denies by default")
        roots = resource.get("provision", [])
        if not roots and decision == "permit":
            raise FhirError(
                "Consent.provision",
                "missing: a Consent that permits everyone everything names no reader, and the ledger grants only"
                " to named parties; give the provisions it excepts",
            )
        if not roots:
            reader.deny(scope, "Consent")  # a base deny with no exception: nobody may read anything
        for index, provision in enumerate(roots):
            reader.walk(provision, f"Consent.provision[{index}]", _opposite(decision), scope, decision)
    else:
        provision = resource.get("provision")
        if provision is None:
            raise FhirError("Consent.provision", "missing: give the provision that says who may or may not read")
        base = _r4_base(resource)
        effect = provision.get("type") or (_opposite(base) if base else None)
        if effect is None:
            raise FhirError(
                "Consent.provision.type",
                "missing: give Consent.policyRule (v3 ActCode OPTIN, OPTINR, OPTOUT or OPTOUTE), whose exception the"
                " root provision is, or the root provision's type",
            )
        reader.walk(provision, "Consent.provision", effect, scope, _opposite(effect))  # the root always excepts
    assert reader.transactions, "every root provision becomes a grant or a deny, or is refused"
    return ImportedConsent(tuple(reader.transactions))


def import_resource(
    data: bytes,
    release: str = "R5",
    references: Mapping[str, bytes] = MappingProxyType({}),
    now_ms: int | None = None,
    category: str = "",
) -> PatientData | ClinicalData | ImportedConsent:
    """Read one FHIR JSON resource and map it to what the ledger takes (see the module
    docstring). ``now_ms`` (default: this machine's clock) is when a Consent's periods must
    have started by; ``category`` the data category of an Observation that codes none."""
    resource = parse_resource(data, release)
    if resource["resourceType"] == "Patient":
        return PatientData(canonical_json(resource))
    if resource["resourceType"] == "Consent":
        if now_ms is None:
            now_ms = (datetime.datetime.now(datetime.UTC) - _EPOCH) // datetime.timedelta(milliseconds=1)
        return _consent(resource, release, references, now_ms)
    return clinical_data(resource, references, category)
