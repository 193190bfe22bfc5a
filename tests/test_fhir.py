"""FHIR interop: audit entries and consents out as R5 resources that the fhir.resources
parser reads back unchanged; clinical resources and consents in, with every way an
untrusted resource can be refused named by its path."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from fhir.resources.auditevent import AuditEvent
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmed.interop.fhir import (
    ACT_REASON_SYSTEM,
    CATEGORY_SYSTEM,
    DEPTH_MAX,
    IMPORT_SIZE_MAX,
    OBSERVATION_CATEGORY_SYSTEM,
    PARTY_SYSTEM,
    ClinicalData,
    FhirError,
    PatientData,
    audit_event,
    consent_resource,
    import_resource,
    instant,
)
from p2pmed.ledger.contracts.audit import AUDIT_KINDS, AuditEntry
from p2pmed.ledger.contracts.consent import ConsentGrant, ConsentProvision

PATIENT, DOCTOR, LAB = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
RECORD, TX = b"\x04" * 32, b"\x05" * 32
REFERENCES = {"Patient/p1": PATIENT, "Practitioner/d1": DOCTOR, "Organization/lab": LAB}
T_MS = 1_800_000_000_123


def entry(kind: str, **changes: Any) -> AuditEntry:
    fields: dict[str, Any] = {
        "kind": kind,
        "patient": PATIENT,
        "actor": DOCTOR,
        "record_id": RECORD,
        "category": "laboratory",
        "purpose": "TREAT",
        "detail": "",
        "time_ms": T_MS,
        "height": 12,
        "tx_id": TX,
    }
    return AuditEntry(**{**fields, **changes})


def as_bytes(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource).encode()


# -- export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(AUDIT_KINDS))
def test_every_audit_entry_round_trips_through_the_fhir_parser(kind: str) -> None:
    event = audit_event(entry(kind))
    parsed = AuditEvent.model_validate_json(json.dumps(event))
    dumped = json.loads(parsed.model_dump_json())
    for field in ("recorded", "occurredDateTime"):  # the parser writes microseconds: the same instant
        assert datetime.datetime.fromisoformat(dumped.pop(field)) == datetime.datetime.fromisoformat(event[field])
    assert dumped == {name: value for name, value in event.items() if name not in ("recorded", "occurredDateTime")}
    assert parsed.code.coding[0].code == kind and parsed.recorded.isoformat().startswith("2027-01-15T08:00:00.123")
    assert parsed.patient.identifier.value == PATIENT.hex() and parsed.agent[0].who.identifier.value == DOCTOR.hex()


def test_a_break_glass_read_is_recognisable() -> None:
    event = AuditEvent.model_validate(audit_event(entry("break-glass", purpose="ETREAT", detail="unconscious in A&E")))
    btg = [concept for concept in event.authorization if concept.coding[0].code == "BTG"]
    assert btg and btg[0].coding[0].system == ACT_REASON_SYSTEM and btg[0].text == "unconscious in A&E"
    assert {concept.coding[0].code for concept in event.category} == {"110110", "110113"}
    assert event.severity == "warning" and event.action == "R"
    ordinary = AuditEvent.model_validate(audit_event(entry("record-read")))
    assert [concept.coding[0].code for concept in ordinary.authorization] == [
        "TREAT"
    ] and ordinary.severity == "informational"


def test_an_entry_without_a_record_names_only_the_transaction() -> None:
    event = audit_event(
        entry("consent-grant", record_id=b"", category="imaging,laboratory", detail=f"grantee {LAB.hex()}")
    )
    [transaction] = event["entity"]
    details = {detail["type"]["text"]: detail["valueString"] for detail in transaction["detail"]}
    assert details == {
        "height": "12",
        "category": "imaging,laboratory",
        "purpose": "TREAT",
        "detail": f"grantee {LAB.hex()}",
    }
    assert "authorization" not in event  # the purpose consented to is not the purpose of this event


def test_a_consent_exported_as_fhir_imports_as_the_same_grant() -> None:
    provision = ConsentProvision(PATIENT, LAB, "imaging", "HRESCH", T_MS, T_MS + 86_400_000, TX, PATIENT)
    resource = consent_resource(provision)
    assert resource["provision"][0]["period"] == {"start": instant(T_MS), "end": instant(T_MS + 86_400_000)}
    assert import_resource(as_bytes(resource)) == ConsentGrant(PATIENT, LAB, ("imaging",), "HRESCH", T_MS + 86_400_000)


def test_instants_beyond_fhir_years_are_clamped() -> None:
    assert instant(2**63 - 1) == "9999-12-31T23:59:59.999Z"
    assert instant(-(2**63)) == "0001-01-01T00:00:00.000Z"


# -- import ------------------------------------------------------------------------------------


def observation(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "haemoglobin"},
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY_SYSTEM, "code": "laboratory"}]}],
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 13.2, "unit": "g/dL"},
    }
    return {**resource, **changes}


def consent_r5(**provision_changes: Any) -> dict[str, Any]:
    provision = {
        "period": {"end": "2030-06-30"},
        "actor": [{"reference": {"reference": "Practitioner/d1"}}],
        "purpose": [{"system": ACT_REASON_SYSTEM, "code": "TREAT"}],
        "code": [
            {
                "coding": [
                    {"system": CATEGORY_SYSTEM, "code": "laboratory"},
                    {"system": CATEGORY_SYSTEM, "code": "imaging"},
                ]
            }
        ],
    }
    return {
        "resourceType": "Consent",
        "status": "active",
        "decision": "permit",
        "subject": {"reference": "Patient/p1"},
        "provision": [{**provision, **provision_changes}],
    }


def consent_r4(**provision_changes: Any) -> dict[str, Any]:
    provision = {
        "type": "permit",
        "period": {"end": "2030-06-30T12:00:00+02:00"},
        "actor": [{"role": {"text": "recipient"}, "reference": {"reference": "Organization/lab"}}],
        "purpose": [{"system": ACT_REASON_SYSTEM, "code": "HRESCH"}],
        "class": [{"system": OBSERVATION_CATEGORY_SYSTEM, "code": "vital-signs"}],
    }
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"text": "patient-privacy"},
        "category": [{"text": "consent"}],
        "patient": {"reference": "Patient/p1"},
        "provision": {**provision, **provision_changes},
    }


def test_an_observation_becomes_a_laboratory_record_in_canonical_json() -> None:
    imported = import_resource(as_bytes(observation()), references=REFERENCES)
    assert isinstance(imported, ClinicalData)
    assert (imported.resource_type, imported.patient, imported.category) == ("Observation", PATIENT, "laboratory")
    assert imported.content == json.dumps(observation(), sort_keys=True, separators=(",", ":")).encode()


def test_conditions_and_medication_requests_of_either_release_become_records() -> None:
    condition = {
        "resourceType": "Condition",
        "clinicalStatus": {"text": "active"},
        "subject": {"identifier": {"system": PARTY_SYSTEM, "value": PATIENT.hex()}},
    }
    assert import_resource(as_bytes(condition)).category == "condition"  # type: ignore[union-attr]
    r5 = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medication": {"concept": {"text": "metformin 500 mg"}},
    }
    r4 = {
        **{k: v for k, v in r5.items() if k != "medication"},
        "medicationCodeableConcept": {"text": "metformin 500 mg"},
    }
    assert import_resource(as_bytes(r5), "R5", REFERENCES).category == "medication"  # type: ignore[union-attr]
    assert import_resource(as_bytes(r4), "R4", REFERENCES).category == "medication"  # type: ignore[union-attr]


def test_a_patient_is_kept_at_the_site() -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Doe", "given": ["Jane"]}], "birthDate": "1980-02-03"}
    imported = import_resource(as_bytes(patient))
    assert isinstance(imported, PatientData) and json.loads(imported.content) == patient


def test_consents_of_r5_and_r4_become_grants() -> None:
    end_of_day_ms = 1_909_094_400_000  # 2030-07-01T00:00Z: "2030-06-30" covers that whole day
    assert import_resource(as_bytes(consent_r5()), references=REFERENCES) == ConsentGrant(
        PATIENT, DOCTOR, ("imaging", "laboratory"), "TREAT", end_of_day_ms
    )
    assert import_resource(as_bytes(consent_r4()), "R4", REFERENCES) == ConsentGrant(
        PATIENT, LAB, ("vital-signs",), "HRESCH", end_of_day_ms - 14 * 3_600_000
    )


DEEP = {"resourceType": "Patient", "extension": [{"url": "x", "extension": []}]}
node: list[Any] = DEEP["extension"][0]["extension"]  # type: ignore[index]
for _ in range(DEPTH_MAX):
    node.append({"url": "x", "extension": []})
    node = node[0]["extension"]


@pytest.mark.parametrize(
    ("data", "release", "path", "fragment"),
    [
        (b" " * (IMPORT_SIZE_MAX + 1), "R5", "", "more than one resource may have"),
        (b"\xff{}", "R5", "", "not UTF-8"),
        (b'{"resourceType": ', "R5", "", "not JSON"),
        (b'{"resourceType": "Patient", "resourceType": "Patient"}', "R5", "", "appears twice"),
        (b'{"resourceType": "Observation", "valueQuantity": {"value": NaN}}', "R5", "", "NaN is not a JSON number"),
        (b"[]", "R5", "", "a FHIR resource is a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "R5", "", "levels deep"),
        (as_bytes(DEEP), "R5", "", f"more than {DEPTH_MAX} levels"),
        (b"{}", "R5", "resourceType", "missing"),
        (b'{"resourceType": "Bundle"}', "R5", "resourceType", "p2pmed imports Patient"),
        (as_bytes(observation()), "DSTU2", "", "unknown FHIR release"),
        (as_bytes({k: v for k, v in observation().items() if k != "status"}), "R5", "Observation.status", "required"),
        (as_bytes(observation(colour="red")), "R5", "Observation.colour", "Extra inputs"),
        (as_bytes(observation(category=[])), "R5", "Observation.category", "no coding"),
        (
            as_bytes(
                observation(
                    category=[
                        {
                            "coding": [
                                {"system": OBSERVATION_CATEGORY_SYSTEM, "code": "laboratory"},
                                {"system": OBSERVATION_CATEGORY_SYSTEM, "code": "imaging"},
                            ]
                        }
                    ]
                )
            ),
            "R5",
            "Observation.category",
            "disagree",
        ),
        (as_bytes({k: v for k, v in observation().items() if k != "subject"}), "R5", "Observation.subject", "missing"),
        (
            as_bytes(observation(subject={"reference": "Patient/other"})),
            "R5",
            "Observation.subject.reference",
            "not mapped",
        ),
        (
            as_bytes(observation(subject={"identifier": {"system": PARTY_SYSTEM, "value": "abc"}})),
            "R5",
            "Observation.subject.identifier.value",
            "64 hex digits",
        ),
        (as_bytes({**consent_r5(), "status": "draft"}), "R5", "Consent.status", "only 'active'"),
        (as_bytes({**consent_r5(), "decision": "deny"}), "R5", "Consent.decision", "only 'permit'"),
        (
            as_bytes({**consent_r5(), "provision": consent_r5()["provision"] * 2}),
            "R5",
            "Consent.provision",
            "exactly one provision",
        ),
        (as_bytes(consent_r5(actor=[])), "R5", "Consent.provision[0].actor", "exactly one actor"),
        (
            as_bytes(consent_r5(actor=[{"role": {"text": "x"}}])),
            "R5",
            "Consent.provision[0].actor[0].reference",
            "missing",
        ),
        (
            as_bytes(consent_r5(purpose=[{"system": ACT_REASON_SYSTEM, "code": "MARKETING"}])),
            "R5",
            "Consent.provision[0].purpose[0]",
            "one of",
        ),
        (as_bytes(consent_r5(code=[])), "R5", "Consent.provision[0].code", "name the data categories"),
        (
            as_bytes(consent_r5(code=[{"coding": [{"system": "http://loinc.org", "code": "718-7"}]}])),
            "R5",
            "Consent.provision[0].code[0].coding[0]",
            "not a p2pmed data category",
        ),
        (as_bytes(consent_r5(action=[{"text": "access"}])), "R5", "Consent.provision[0].action", "not supported"),
        (
            as_bytes(consent_r5(provision=[{"period": {"end": "2030"}}])),
            "R5",
            "Consent.provision[0].provision",
            "not supported",
        ),
        (
            as_bytes(consent_r5(period={"start": "2020-01-01"})),
            "R5",
            "Consent.provision[0].period.end",
            "always expires",
        ),
        (as_bytes(consent_r5(period={"end": "2030-06"})), "R5", "Consent.provision[0].period.end", "give a full date"),
        (
            as_bytes({**consent_r5(), "modifierExtension": [{"url": "x", "valueString": "y"}]}),
            "R5",
            "Consent.modifierExtension",
            "not supported",
        ),
        (as_bytes(consent_r4(type="deny")), "R4", "Consent.provision.type", "only 'permit'"),
        (as_bytes({k: v for k, v in consent_r4().items() if k != "provision"}), "R4B", "Consent.provision", "missing"),
    ],
)
def test_bad_input_is_refused_naming_the_path(data: bytes, release: str, path: str, fragment: str) -> None:
    with pytest.raises(FhirError) as raised:
        import_resource(data, release, REFERENCES)
    assert (raised.value.path, fragment in raised.value.reason) == (path, True), str(raised.value)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["resourceType", "system", "code", "coding", "reference", "identifier", "value", "end", "text"]
            ),
            children,
            max_size=3,
        )
    ),
    max_leaves=12,
)
PROVISION_KEYS = ["period", "actor", "purpose", "code", "action", "provision"]


def with_provision_value(name: str, value: Any) -> bytes:
    resource = consent_r5()
    resource["provision"][0][name] = value
    return as_bytes(resource)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        JSON.map(lambda value: json.dumps(value).encode()),
        st.builds(with_provision_value, st.sampled_from(PROVISION_KEYS), JSON),
        st.builds(
            lambda name, value: as_bytes(observation(**{name: value})),
            st.sampled_from(["category", "subject", "code"]),
            JSON,
        ),
    )
)
def test_no_input_escapes_as_anything_but_a_fhir_error(data: bytes) -> None:
    try:
        import_resource(data, "R5", REFERENCES)
    except FhirError:
        pass
