"""Safe Harbor de-identification of FHIR resources full of identifiers, study pseudonyms and
the k-anonymity classes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhir.resources.condition import Condition
from fhir.resources.medicationrequest import MedicationRequest
from fhir.resources.observation import Observation
from fhir.resources.patient import Patient

from p2pmed.interop.deidentify import (
    Pseudonyms,
    QuasiIdentifiers,
    deidentify_patient,
    deidentify_resource,
    identifying_values,
    smallest_class,
    zip3,
)

SECRET, OTHER_SECRET = b"s" * 32, b"t" * 32
PATIENT_ID, RECORD_ID = b"p" * 32, b"r" * 32
EXPORT_YEAR = 2027

IDENTIFIERS = [
    "Eleanor",
    "Rigby",
    "Tobias",  # a relative, named as the patient's contact
    "12 Penny Lane",
    "Liverpool",
    "02139",
    "+1 617 555 0142",
    "617-555-0199",
    "eleanor.rigby@example.org",
    "MRN-0042-7731",
    "123-45-6789",
    "HPB-99812",
    "https://eleanor.example.org/home",
    "192.168.10.77",
    "1931-05-17",
    "2024-03-08",
    "pt-eleanor-1",
]


def full_patient(birth_date: str = "1931-05-17", postal_code: str = "02139") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": "pt-eleanor-1",
        "text": {"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'>Eleanor Rigby</div>"},
        "identifier": [
            {"system": "http://hospital.example.org/mrn", "value": "MRN-0042-7731"},
            {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "123-45-6789"},
            {"system": "http://plan.example.org/member", "value": "HPB-99812"},
        ],
        "name": [{"family": "Rigby", "given": ["Eleanor"], "text": "Eleanor Rigby"}],
        "telecom": [
            {"system": "phone", "value": "+1 617 555 0142"},
            {"system": "fax", "value": "617-555-0199"},
            {"system": "email", "value": "eleanor.rigby@example.org"},
            {"system": "url", "value": "https://eleanor.example.org/home"},
        ],
        "gender": "female",
        "birthDate": birth_date,
        "address": [{"line": ["12 Penny Lane"], "city": "Liverpool", "state": "MA", "postalCode": postal_code}],
        "contact": [
            {
                "name": {"given": ["Tobias"], "family": "Rigby"},
                "telecom": [{"system": "phone", "value": "617-555-0199"}],
            }
        ],
        "photo": [{"contentType": "image/jpeg", "data": "aGVsbG8="}],
    }


def full_observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "obs-MRN-0042-7731",
        "meta": {"source": "http://192.168.10.77/ehr"},
        "text": {"status": "generated", "div": "<div xmlns='http://www.w3.org/1999/xhtml'>Eleanor's HbA1c</div>"},
        "extension": [{"url": "http://example.org/ip", "valueString": "192.168.10.77"}],
        "identifier": [{"value": "MRN-0042-7731"}],
        "status": "final",
        "category": [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c for Eleanor Rigby"}],
            "text": "HbA1c drawn at 12 Penny Lane",
        },
        "subject": {"reference": "Patient/pt-eleanor-1", "display": "Eleanor Rigby"},
        "performer": [{"reference": "Practitioner/dr-1", "display": "Dr Who"}],
        "effectiveDateTime": "2024-03-08T09:30:00Z",
        "issued": "2024-03-08T10:00:00Z",
        "valueQuantity": {"value": 7.1, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
        "note": [{"text": "Call eleanor.rigby@example.org or +1 617 555 0142"}],
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "30525-0", "display": "Age"}]},
                "valueQuantity": {"value": 95, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"},
            }
        ],
    }


def full_condition() -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": "cond-1",
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {
            "coding": [{"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2"}]
        },
        "subject": {"reference": "Patient/pt-eleanor-1"},
        "onsetAge": {"value": 92, "unit": "years", "system": "http://unitsofmeasure.org", "code": "a"},
        "recordedDate": "2024-03-08",
        "recorder": {"reference": "Practitioner/dr-1", "display": "Dr Who"},
        "note": [{"text": "Seen at Liverpool clinic, MRN-0042-7731"}],
    }


def full_medication() -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "id": "med-1",
        "status": "active",
        "intent": "order",
        "medication": {
            "concept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975"}]}
        },
        "subject": {"reference": "Patient/pt-eleanor-1"},
        "authoredOn": "2024-03-08T11:00:00Z",
        "requester": {"reference": "Practitioner/dr-1"},
        "dosageInstruction": [{"text": "Eleanor: take with food", "patientInstruction": "call 617-555-0199"}],
    }


def leaked(output: dict[str, Any]) -> list[str]:
    text = json.dumps(output).lower()
    return [identifier for identifier in IDENTIFIERS if identifier.lower() in text]


PSEUDONYMS = Pseudonyms(SECRET, "DIAB-2027-01")


@pytest.mark.parametrize("build", [full_observation, full_condition, full_medication])
def test_no_safe_harbor_identifier_survives_in_a_clinical_resource(build: Any) -> None:
    known = identifying_values(full_patient())
    output = deidentify_resource(build(), PSEUDONYMS, PATIENT_ID, RECORD_ID, known)
    assert leaked(output) == []
    assert output["subject"] == {"reference": f"Patient/{PSEUDONYMS.of('patient', PATIENT_ID)}"}
    assert output["id"] == PSEUDONYMS.of("record", RECORD_ID)
    model = {"Observation": Observation, "Condition": Condition, "MedicationRequest": MedicationRequest}
    model[output["resourceType"]].model_validate(output)  # still a valid FHIR R5 resource


def test_dates_become_years_and_ages_over_89_are_grouped() -> None:
    observation = deidentify_resource(full_observation(), PSEUDONYMS, PATIENT_ID, RECORD_ID)  # its own labels only
    assert observation["effectiveDateTime"] == "2024"
    assert "issued" not in observation  # an instant has no year-only form
    assert observation["component"][0]["valueQuantity"]["value"] == 90
    assert observation["component"][0]["valueQuantity"]["comparator"] == ">="
    assert observation["code"]["coding"][0] == {"system": "http://loinc.org", "code": "4548-4", "display": "[removed]"}
    assert observation["valueQuantity"]["value"] == 7.1
    condition = deidentify_resource(full_condition(), PSEUDONYMS, PATIENT_ID, RECORD_ID)
    assert condition["onsetAge"]["value"] == 90 and condition["recordedDate"] == "2024"
    assert condition["code"]["coding"][0]["display"] == "Diabetes mellitus type 2"


def test_the_patient_s_name_is_swept_from_a_resource_that_only_names_them_in_text() -> None:
    observation = full_observation()
    del observation["subject"]["display"]
    alone = deidentify_resource(observation, PSEUDONYMS, PATIENT_ID, RECORD_ID)
    assert "Eleanor" in alone["code"]["coding"][0]["display"]  # nothing in it says the name is one
    swept = deidentify_resource(observation, PSEUDONYMS, PATIENT_ID, RECORD_ID, identifying_values(full_patient()))
    assert leaked(swept) == []


def test_a_patient_keeps_sex_birth_year_and_three_digit_zip_only() -> None:
    young = deidentify_patient(full_patient("1980-05-17"), PSEUDONYMS, PATIENT_ID, EXPORT_YEAR)
    assert young.resource == {
        "resourceType": "Patient",
        "id": PSEUDONYMS.of("patient", PATIENT_ID),
        "gender": "female",
        "birthDate": "1980",
        "address": [{"postalCode": "021"}],
    }
    assert young.quasi_identifiers == QuasiIdentifiers("1980", "female", "021")
    Patient.model_validate(young.resource)


def test_a_patient_over_89_has_no_birth_year_and_a_restricted_zip_becomes_000() -> None:
    old = deidentify_patient(full_patient("1931-05-17", "03601"), PSEUDONYMS, PATIENT_ID, EXPORT_YEAR)
    assert "birthDate" not in old.resource and leaked(old.resource) == []
    assert old.quasi_identifiers == QuasiIdentifiers("90+", "female", "000")
    unknown = deidentify_patient(None, PSEUDONYMS, PATIENT_ID, EXPORT_YEAR)
    assert unknown.quasi_identifiers == QuasiIdentifiers("unknown", "unknown", "unknown")


@pytest.mark.parametrize(
    ("postal_code", "expected"),
    [
        ("02139", "021"),
        ("02139-4307", "021"),
        ("03601", "000"),
        ("89301", "000"),
        ("SW1A 1AA", "unknown"),
        ("", "unknown"),
    ],
)
def test_zip3(postal_code: str, expected: str) -> None:
    assert zip3(postal_code) == expected


def test_pseudonyms_link_within_a_study_and_not_across_studies() -> None:
    same = Pseudonyms(SECRET, "DIAB-2027-01")
    other_study = Pseudonyms(SECRET, "CARDIO-2027-02")
    other_site = Pseudonyms(OTHER_SECRET, "DIAB-2027-01")
    assert same.of("patient", PATIENT_ID) == PSEUDONYMS.of("patient", PATIENT_ID)
    assert PSEUDONYMS.of("patient", PATIENT_ID) != other_study.of("patient", PATIENT_ID)
    assert PSEUDONYMS.of("patient", PATIENT_ID) != other_site.of("patient", PATIENT_ID)
    assert PSEUDONYMS.of("patient", PATIENT_ID) != PSEUDONYMS.of("record", PATIENT_ID)
    assert PATIENT_ID.hex() not in PSEUDONYMS.of("patient", PATIENT_ID)


def test_smallest_class_names_its_size_and_values() -> None:
    a, b = QuasiIdentifiers("1980", "female", "021"), QuasiIdentifiers("1975", "male", "100")
    assert smallest_class([a, a, b, a]) == (1, b)
    assert smallest_class([a, a]) == (2, a)
    assert smallest_class([]) == (0, None)
