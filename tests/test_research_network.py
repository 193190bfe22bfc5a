"""A research study end to end on four real node processes, through the CLI: registered by
the hospital, approved by the validators, consented to by patients; an export with a patient
whose quasi-identifiers are unique is refused at k = 2; after withdrawals the export leaves
the withdrawn out, carries no Safe Harbor identifier, is anchored, and is listed per patient."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from p2pmed.cli.main import cli
from p2pmed.client.records import submit, write_record
from p2pmed.crypto import EncryptionPrivateKey, SigningKey
from p2pmed.ledger.contracts.consent import StudyConsent, StudyWithdraw
from p2pmed.ledger.contracts.identity import PersonRegister
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import ENCRYPTION_KEY, NODE_KEY, load_home
from p2pmed.testing.process_network import ProcessNetwork

CONFIG = NodeConfig(log_format="json", request_timeout_ms=1_500, view_change_timeout_ms=1_500)
HOSPITAL = 0
STUDY = "HBA1C-2027-01"
NAMES = ["Ada Quist", "Bea Quist", "Cleo Quist", "Dora Vane"]


@pytest.fixture(scope="module")
def net() -> Iterator[ProcessNetwork]:
    with tempfile.TemporaryDirectory(prefix="p2pmed-research-") as directory:
        network = ProcessNetwork(Path(directory), 4, CONFIG)
        try:
            network.start_all(60.0)
            yield network
        finally:
            network.close()


def patient_resource(name: str, birth_date: str, gender: str, postal_code: str) -> dict[str, Any]:
    given, family = name.split()
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "http://hospital.example.org/mrn", "value": f"MRN-{family}-{given}"}],
        "name": [{"family": family, "given": [given]}],
        "telecom": [{"system": "email", "value": f"{given.lower()}@example.org"}],
        "gender": gender,
        "birthDate": birth_date,
        "address": [{"line": [f"1 {family} Road"], "city": "Cambridge", "postalCode": postal_code}],
    }


def observation(name: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4", "display": "Hemoglobin A1c"}]},
        "subject": {"reference": "Patient/1", "display": name},
        "effectiveDateTime": "2026-03-08T09:30:00Z",
        "valueQuantity": {"value": 7.1, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
        "note": [{"text": f"{name} asked for a call"}],
    }


def cli_ok(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_a_study_export_honours_consent_k_anonymity_and_safe_harbor(net: ProcessNetwork, tmp_path: Path) -> None:
    home = net.homes[HOSPITAL]
    site = load_home(home)
    patients = [SigningKey.generate() for _ in NAMES]
    demographics = [("1980-02-01", "female", "02139")] * 3 + [("1931-05-17", "male", "03601")]
    with net.client(HOSPITAL) as rpc:
        for patient, name, (born, gender, postal) in zip(patients, NAMES, demographics, strict=True):
            register = PersonRegister(patient.public_key, "patient", EncryptionPrivateKey.generate().public_key)
            submit(rpc, site.key, "identity.person.register", register)
            resource = patient_resource(name, born, gender, postal)
            write_record(rpc, site.key, patient.public_key, "condition", json.dumps(resource).encode())
            write_record(rpc, site.key, patient.public_key, "laboratory", json.dumps(observation(name)).encode())

    signed = ["--home", str(home), "--key", str(home / NODE_KEY), "--wait"]
    cli_ok("research", "register", STUDY, *signed, "--ethics", "IRB-77", "--dua-sha256", "ab" * 32,
           "--category", "laboratory", "--category", "condition", "--k", "2",
           "--start", "2025-01-01", "--end", "2040-12-31")  # fmt: skip
    shown = json.loads(cli_ok("research", "show", STUDY, "--home", str(home), "--json"))
    assert not shown["open"]
    for index in range(3):
        voter = net.homes[index]
        cli_ok("research", "approve", STUDY, "--home", str(voter), "--key", str(voter / NODE_KEY), "--wait",
               "--sha256", shown["sha256"])  # fmt: skip
    with net.client(HOSPITAL) as rpc:
        for patient in patients:
            submit(rpc, patient, "consent.study", StudyConsent(patient.public_key, STUDY))

    export = ["research", "export", STUDY, *signed, "--encryption-key", str(home / ENCRYPTION_KEY)]
    refused = CliRunner().invoke(cli, [*export, "--out", str(tmp_path / "first")])
    assert refused.exit_code == 1
    assert "not 2-anonymous" in refused.output and "has 1 patient" in refused.output
    assert not (tmp_path / "first").exists()

    with net.client(HOSPITAL) as rpc:
        submit(rpc, patients[3], "consent.study-withdraw", StudyWithdraw(patients[3].public_key, STUDY))
    first = json.loads(cli_ok(*export, "--out", str(tmp_path / "first"), "--json"))
    assert (first["patients"], first["records"]) == (3, 3)
    text = "".join((tmp_path / "first" / name).read_text() for name in ("patients.ndjson", "resources.ndjson"))
    for leaked in ("Quist", "Ada", "MRN-", "@example.org", "Road", "Cambridge", "02139", "1980-02-01", "2026-03-08"):
        assert leaked not in text
    manifest = (tmp_path / "first" / "manifest.json").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == first["manifest_sha256"]

    with net.client(HOSPITAL) as rpc:
        submit(rpc, patients[0], "consent.study-withdraw", StudyWithdraw(patients[0].public_key, STUDY))
    second = json.loads(cli_ok(*export, "--out", str(tmp_path / "second"), "--json"))
    assert second["patients"] == 2

    def exports_of(patient: SigningKey) -> list[dict[str, Any]]:
        listed = cli_ok("research", "exports", "--home", str(home), "--patient", patient.public_key.hex(), "--json")
        return list(json.loads(listed)["exports"])

    assert [each["manifest_sha256"] for each in exports_of(patients[0])] == [first["manifest_sha256"]]
    assert len(exports_of(patients[1])) == 2 and exports_of(patients[3]) == []
    first_ids = (tmp_path / "first" / "patients.ndjson").read_text().splitlines()
    second_ids = (tmp_path / "second" / "patients.ndjson").read_text().splitlines()
    assert set(second_ids) < set(first_ids)  # the same pseudonyms within the study; the withdrawn one gone
