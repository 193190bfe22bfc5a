"""FHIR interop: audit entries, consents and denies out as R5 resources that the
fhir.resources parser reads back unchanged; clinical resources and consents in, each
release read as its own spec says (R5 ``decision`` and provisions that except from it,
R4 ``policyRule`` and a root provision that excepts from it), with every way an untrusted
resource can be refused named by its path."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from fhir.resources.auditevent import AuditEvent
from fhir.resources.consent import Consent
from hypothesis import given, settings
from hypothesis import strategies as st

from p2pmed.interop.fhir import (
    ACT_CODE_SYSTEM,
    ACT_REASON_SYSTEM,
    CATEGORY_SYSTEM,
    CONSENT_ACTION_SYSTEM,
    CONSENT_TRANSACTIONS_MAX,
    DEPTH_MAX,
    IMPORT_SIZE_MAX,
    OBSERVATION_CATEGORY_SYSTEM,
    PARTY_SYSTEM,
    ClinicalData,
    ConsentTx,
    FhirError,
    ImportedConsent,
    PatientData,
    audit_event,
    consent_resource,
    deny_resource,
    import_resource,
    instant,
)
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

PATIENT, DOCTOR, LAB = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
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


def grants(*bodies: ConsentGrant | ConsentDeny, path: str = "Consent.provision[0]") -> ImportedConsent:
    return ImportedConsent(
        tuple(ConsentTx("consent.grant" if isinstance(b, ConsentGrant) else "consent.deny", b, path) for b in bodies)
    )


def test_a_consent_exported_as_fhir_imports_as_the_same_grant() -> None:
    provision = ConsentProvision(PATIENT, LAB, "imaging", "HRESCH", T_MS, T_MS + 86_400_000, TX, PATIENT)
    resource = consent_resource(provision)
    assert resource["decision"] == "deny", "R5: nothing by default; the provision is the permit that excepts"
    assert resource["provision"][0]["period"] == {"start": instant(T_MS), "end": instant(T_MS + 86_400_000)}
    assert import_resource(as_bytes(resource), now_ms=T_MS) == grants(
        ConsentGrant(PATIENT, LAB, ("imaging",), ("HRESCH",), T_MS + 86_400_000)
    )


@pytest.mark.parametrize("grantee", [LAB, EVERYONE])
def test_a_deny_exported_as_fhir_imports_as_the_same_deny(grantee: bytes) -> None:
    denial = DenyProvision(PATIENT, grantee, "genomics", "HRESCH", T_MS, NEVER_MS, TX, DOCTOR)
    resource = deny_resource(denial)
    Consent.model_validate(resource)
    assert resource["decision"] == "permit" and resource["provision"][0]["period"] == {"start": instant(T_MS)}
    assert ("actor" in resource["provision"][0]) == bool(grantee)
    assert import_resource(as_bytes(resource), now_ms=T_MS) == grants(
        ConsentDeny(PATIENT, grantee, ("genomics",), ("HRESCH",), NEVER_MS)
    )


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
    """Nothing by default (decision deny), except a permit to the doctor."""
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
        "decision": "deny",
        "subject": {"reference": "Patient/p1"},
        "provision": [{**provision, **provision_changes}],
    }


def party_reference(party: bytes) -> dict[str, Any]:
    return {"identifier": {"system": PARTY_SYSTEM, "value": party.hex()}}


def category(code: str) -> dict[str, Any]:
    return {"coding": [{"system": CATEGORY_SYSTEM, "code": code}]}


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


END_OF_DAY_MS = 1_909_094_400_000  # 2030-07-01T00:00Z: "2030-06-30" covers that whole day


def test_consents_of_r5_and_r4_become_grants() -> None:
    assert import_resource(as_bytes(consent_r5()), references=REFERENCES, now_ms=T_MS) == grants(
        ConsentGrant(PATIENT, DOCTOR, ("imaging", "laboratory"), ("TREAT",), END_OF_DAY_MS)
    )
    assert import_resource(as_bytes(consent_r4()), "R4", REFERENCES, T_MS) == grants(
        ConsentGrant(PATIENT, LAB, ("vital-signs",), ("HRESCH",), END_OF_DAY_MS - 14 * 3_600_000),
        path="Consent.provision",
    )


def test_an_r5_permit_carries_several_purposes_and_a_nested_deny_excepts_from_it() -> None:
    """Nothing by default; the doctor may see laboratory and imaging data for treatment and
    payment, except imaging for payment, which is denied."""
    nested_deny = {"purpose": [{"system": ACT_REASON_SYSTEM, "code": "HPAYMT"}], "code": [category("imaging")]}
    resource = consent_r5(
        purpose=[{"system": ACT_REASON_SYSTEM, "code": "TREAT"}, {"system": ACT_REASON_SYSTEM, "code": "HPAYMT"}],
        action=[{"coding": [{"system": CONSENT_ACTION_SYSTEM, "code": "access"}]}],
        provision=[nested_deny],
    )
    imported = import_resource(as_bytes(resource), references=REFERENCES, now_ms=T_MS)
    assert imported == ImportedConsent(
        (
            ConsentTx(
                "consent.grant",
                ConsentGrant(PATIENT, DOCTOR, ("imaging", "laboratory"), ("HPAYMT", "TREAT"), END_OF_DAY_MS),
                "Consent.provision[0]",
            ),
            ConsentTx(
                "consent.deny",
                ConsentDeny(PATIENT, DOCTOR, ("imaging",), ("HPAYMT",), END_OF_DAY_MS),
                "Consent.provision[0].provision[0]",
            ),
        )
    )


def test_an_r5_decision_permit_withholds_what_its_provisions_name() -> None:
    """HL7's R5 consent-example-notThem: permit by default, except the ex-spouse, a nurse."""
    resource = {
        "resourceType": "Consent",
        "status": "active",
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "subject": {"reference": "Patient/p1"},
        "date": "2018-12-24",
        "controller": [{"reference": "Organization/lab"}],
        "regulatoryBasis": [{"coding": [{"system": ACT_CODE_SYSTEM, "code": "INFA"}]}],
        "decision": "permit",
        "provision": [
            {
                "actor": [
                    {
                        "role": {"coding": [{"system": PARTICIPATION, "code": "PRCP"}]},
                        "reference": {"reference": "Practitioner/d1", "display": "Carla Espinosa"},
                    }
                ],
                "action": [
                    {"coding": [{"system": CONSENT_ACTION_SYSTEM, "code": "access"}]},
                    {"coding": [{"system": CONSENT_ACTION_SYSTEM, "code": "correct"}]},
                ],
            }
        ],
    }
    assert import_resource(as_bytes(resource), references=REFERENCES, now_ms=T_MS) == grants(
        ConsentDeny(PATIENT, DOCTOR, tuple(sorted(CATEGORIES)), tuple(sorted(PURPOSES)), NEVER_MS)
    )
    opt_out = {
        "resourceType": "Consent",
        "status": "active",
        "decision": "deny",
        "subject": {"reference": "Patient/p1"},
    }
    opt_out["period"] = {"start": "2020-01-01", "end": "2030-06-30"}
    assert import_resource(as_bytes(opt_out), references=REFERENCES, now_ms=T_MS) == grants(
        ConsentDeny(PATIENT, EVERYONE, tuple(sorted(CATEGORIES)), tuple(sorted(PURPOSES)), END_OF_DAY_MS),
        path="Consent",
    )


def hl7_r4(provision: dict[str, Any], policy_rule: str = "OPTIN") -> dict[str, Any]:
    """An R4 Consent shaped as HL7's R4 examples are (consent-example-notOrg, -notThem)."""
    return {
        "resourceType": "Consent",
        "id": "consent-example-notOrg",
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Withhold</div>'},
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p1", "display": "P. van de Heuvel"},
        "dateTime": "2015-11-18",
        "organization": [{"reference": "Organization/lab"}],
        "sourceAttachment": {"title": "The terms of the consent in lawyer speak."},
        "policyRule": {"coding": [{"system": ACT_CODE_SYSTEM, "code": policy_rule}]},
        "provision": provision,
    }


ACCESS_CORRECT = [
    {"coding": [{"system": CONSENT_ACTION_SYSTEM, "code": "access"}]},
    {"coding": [{"system": CONSENT_ACTION_SYSTEM, "code": "correct"}]},
]


def test_hl7_r4_examples_refused_until_now_become_denies() -> None:
    """consent-example-notOrg (policyRule OPTIN, a root provision of type deny) and -notThem
    (policyRule OPTIN, a root provision without a type: the exception to OPTIN, a deny)."""
    not_org = {
        "type": "deny",
        "actor": [
            {
                "role": {"coding": [{"system": PARTICIPATION, "code": "PRCP"}]},
                "reference": {"reference": "Organization/lab"},
            }
        ],
        "action": ACCESS_CORRECT,
    }
    everything = (tuple(sorted(CATEGORIES)), tuple(sorted(PURPOSES)), NEVER_MS)
    expected = grants(ConsentDeny(PATIENT, LAB, *everything), path="Consent.provision")
    assert import_resource(as_bytes(hl7_r4(not_org)), "R4", REFERENCES, T_MS) == expected
    not_them = {**not_org, "actor": [{**not_org["actor"][0], "reference": {"reference": "Practitioner/d1"}}]}
    del not_them["type"]
    expected = grants(ConsentDeny(PATIENT, DOCTOR, *everything), path="Consent.provision")
    assert import_resource(as_bytes(hl7_r4(not_them)), "R4B", REFERENCES, T_MS) == expected


def test_an_r4_opt_out_permits_its_root_provision_and_nested_types_except_from_it() -> None:
    """policyRule OPTOUT: the root provision (no type) permits the lab; nested in it, a deny
    of genomics, narrowed by its parent to the lab, the same purposes and period."""
    root = {
        "period": {"start": "2020-01-01", "end": "2030-06-30"},
        "actor": [{"role": {"text": "recipient"}, "reference": {"reference": "Organization/lab"}}],
        "class": [{"system": CATEGORY_SYSTEM, "code": "laboratory"}, {"system": CATEGORY_SYSTEM, "code": "genomics"}],
        "purpose": [{"system": ACT_REASON_SYSTEM, "code": "TREAT"}, {"system": ACT_REASON_SYSTEM, "code": "HRESCH"}],
        "provision": [{"type": "deny", "class": [{"system": CATEGORY_SYSTEM, "code": "genomics"}]}],
    }
    imported = import_resource(as_bytes(hl7_r4(root, "OPTOUT")), "R4", REFERENCES, T_MS)
    assert imported == ImportedConsent(
        (
            ConsentTx(
                "consent.grant",
                ConsentGrant(PATIENT, LAB, ("genomics", "laboratory"), ("HRESCH", "TREAT"), END_OF_DAY_MS),
                "Consent.provision",
            ),
            ConsentTx(
                "consent.deny",
                ConsentDeny(PATIENT, LAB, ("genomics",), ("HRESCH", "TREAT"), END_OF_DAY_MS),
                "Consent.provision.provision[0]",
            ),
        )
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
        (as_bytes({**consent_r5(), "decision": None}), "R5", "Consent.decision", "missing"),
        (as_bytes({**consent_r5(), "decision": "permit", "provision": []}), "R5", "Consent.provision", "grants only"),
        (as_bytes(consent_r5(actor=[])), "R5", "Consent.provision[0].actor", "names who may read"),
        (
            as_bytes(consent_r5(actor=[{"role": {"text": "x"}}])),
            "R5",
            "Consent.provision[0].actor[0].reference",
            "missing",
        ),
        (
            as_bytes(
                consent_r5(
                    actor=[
                        {
                            "role": {"coding": [{"system": PARTICIPATION, "code": "CST"}]},
                            "reference": {"reference": "Organization/lab"},
                        }
                    ]
                )
            ),
            "R5",
            "Consent.provision[0].actor[0].role.coding[0]",
            "the custodian (CST)",
        ),
        (
            as_bytes(consent_r5(purpose=[{"system": ACT_REASON_SYSTEM, "code": "MARKETING"}])),
            "R5",
            "Consent.provision[0].purpose[0]",
            "one of",
        ),
        (
            as_bytes(consent_r5(code=[{"coding": [{"system": "http://loinc.org", "code": "718-7"}]}])),
            "R5",
            "Consent.provision[0].code[0].coding[0]",
            "not a p2pmed data category",
        ),
        (as_bytes(consent_r5(action=[{"text": "access"}])), "R5", "Consent.provision[0].action", "access"),
        (
            as_bytes(consent_r5(data=[{"meaning": "instance", "reference": {"reference": "Observation/1"}}])),
            "R5",
            "Consent.provision[0].data",
            "not single resources",
        ),
        (
            as_bytes(consent_r5(securityLabel=[{"system": ACT_CODE_SYSTEM, "code": "PSY"}])),
            "R5",
            "Consent.provision[0].securityLabel",
            "by sensitivity",
        ),
        (
            as_bytes(consent_r5(provision=[{"period": {"end": "2030"}}])),
            "R5",
            "Consent.provision[0].provision[0].period.end",
            "give a full date",
        ),
        (
            as_bytes(consent_r5(provision=[{"code": [category("imaging")], "provision": [{"purpose": []}]}])),
            "R5",
            "Consent.provision[0].provision[0].provision[0]",
            "a permit inside the deny of Consent.provision[0].provision[0]",
        ),
        (
            as_bytes(consent_r5(provision=[{"code": [category("genomics")]}])),
            "R5",
            "Consent.provision[0].provision[0].code",
            "does not cover",
        ),
        (
            as_bytes(consent_r5(actor=[{"reference": party_reference(bytes([n]) * 32)} for n in range(65)])),
            "R5",
            "Consent.provision[0]",
            f"more than {CONSENT_TRANSACTIONS_MAX} grants and denies",
        ),
        (
            as_bytes(consent_r5(period={"start": "2020-01-01"})),
            "R5",
            "Consent.provision[0].period.end",
            "always expires",
        ),
        (
            as_bytes(consent_r5(period={"start": "2099-01-01", "end": "2099-12-31"})),
            "R5",
            "Consent.provision[0].period.start",
            "once it has started",
        ),
        (as_bytes(consent_r5(period={"end": "2030-06"})), "R5", "Consent.provision[0].period.end", "give a full date"),
        (
            as_bytes({**consent_r5(), "modifierExtension": [{"url": "x", "valueString": "y"}]}),
            "R5",
            "Consent.modifierExtension",
            "not supported",
        ),
        (as_bytes({k: v for k, v in consent_r4().items() if k != "provision"}), "R4B", "Consent.provision", "missing"),
        (
            as_bytes(consent_r4(type=None)),
            "R4",
            "Consent.provision.type",
            "give Consent.policyRule",
        ),
        (
            as_bytes(consent_r4(provision=[{"type": "permit"}], type="deny")),
            "R4",
            "Consent.provision.provision[0]",
            "a permit inside the deny of Consent.provision",
        ),
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


# -- an Observation without a category ------------------------------------------------------------


def uncategorised(*loinc_codes: str) -> bytes:
    resource = observation(code={"coding": [{"system": "http://loinc.org", "code": code} for code in loinc_codes]})
    del resource["category"]
    return as_bytes(resource)


@pytest.mark.parametrize(
    ("codes", "named", "expected"),
    [
        (("8867-4",), "", "vital-signs"),  # heart rate
        (("8480-6",), "", "vital-signs"),  # systolic blood pressure
        (("59408-5",), "vital-signs", "vital-signs"),  # SpO2, named the same
        (("2708-6", "59408-5"), "", "vital-signs"),
        (("29463-7",), "", "vital-signs"),  # body weight
        (("2345-7",), "", "laboratory"),  # glucose
        (("99999-9",), "laboratory", "laboratory"),  # a code the table does not know, named by the user
        ((), "imaging", "imaging"),
    ],
)
def test_an_observation_without_a_category_takes_the_named_or_the_loinc_implied_one(
    codes: tuple[str, ...], named: str, expected: str
) -> None:
    imported = import_resource(uncategorised(*codes), "R5", REFERENCES, category=named)
    assert isinstance(imported, ClinicalData) and imported.category == expected


@pytest.mark.parametrize(
    ("codes", "named", "path", "fragment"),
    [
        (("99999-9",), "", "Observation.category", "name the data category (--category)"),
        (("8867-4",), "laboratory", "Observation.code", "LOINC 8867-4 is a vital-signs code, not laboratory"),
        (("8867-4", "2345-7"), "", "Observation.code", "imply different data categories"),
        (("8867-4",), "gossip", "", "unknown data category 'gossip'"),
    ],
)
def test_an_observation_without_a_category_is_refused_when_none_can_be_told(
    codes: tuple[str, ...], named: str, path: str, fragment: str
) -> None:
    with pytest.raises(FhirError) as raised:
        import_resource(uncategorised(*codes), "R5", REFERENCES, category=named)
    assert (raised.value.path, fragment in raised.value.reason) == (path, True), str(raised.value)


def test_a_coded_category_wins_over_a_named_one() -> None:
    imported = import_resource(as_bytes(observation()), "R5", REFERENCES, category="imaging")
    assert isinstance(imported, ClinicalData) and imported.category == "laboratory"
