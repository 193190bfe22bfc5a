"""The healthcare CLI without a network: the commands talk to the real RPC methods over an
in-process client, so reads format real answers and writes are signed here and
decided by the real rules on a real store. Bad input exits 2 before any node is asked;
a node that is not running, or a ledger that refuses, exits 1 with the reason. The same
command groups against real node processes: test_cli_real_node.py."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fhir.resources.auditevent import AuditEvent

from health_world import DATASET, DOCTOR, GTIN, HOSPITAL, NURSE, PATIENT, SPONSOR, TRIAL, InProcessClient
from p2pmed.cli.main import cli
from p2pmed.cli.signing import UtcTime
from p2pmed.crypto import SigningKey, load_signing_key, save_signing_key
from p2pmed.ledger.tx import decode_transaction
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method

P = PATIENT.public_key.hex()


def key_file(directory: Path, key: SigningKey, name: str) -> str:
    path = directory / f"{name}.pem"
    save_signing_key(path, key)
    return str(path)


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args[:2], "--home", str(home), *args[2:]])


# -- identity ---------------------------------------------------------------------------------


def test_identity_keys_writes_private_files_and_prints_the_public_halves(directory: Path) -> None:
    out = directory / "alice"
    result = CliRunner().invoke(cli, ["identity", "keys", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["public_key"] == load_signing_key(out / "signing_key.pem").public_key.hex()
    assert len(bytes.fromhex(printed["encryption_key"])) == 32
    assert {stat.S_IMODE((out / name).stat().st_mode) for name in ("signing_key.pem", "encryption_key")} == {0o600}
    again = CliRunner().invoke(cli, ["identity", "keys", "--out", str(out)])
    assert again.exit_code == 2 and "refusing to overwrite" in again.output


def test_a_site_registers_a_person_with_wait(home: Path, directory: Path, client: InProcessClient) -> None:
    keys = json.loads(CliRunner().invoke(cli, ["identity", "keys", "--out", str(directory / "bob"), "--json"]).output)
    result = run(
        home,
        "identity",
        "register-person",
        "--key",
        key_file(directory, HOSPITAL, "site"),
        "--role",
        "patient",
        "--public-key",
        keys["public_key"],
        "--encryption-key",
        keys["encryption_key"],
        "--wait",
    )
    assert result.exit_code == 0, result.output
    assert "committed at height" in result.output and "identity.person.register" in result.output
    assert client.calls[:3] == ["node.status", "account.nonce", "tx.submit"] and client.calls[-1] == "tx.get"
    shown = run(home, "identity", "person", keys["public_key"])
    assert "patient, in force" in shown.output and HOSPITAL.public_key.hex() in shown.output
    org = run(home, "identity", "org", HOSPITAL.public_key.hex())
    assert org.exit_code == 0 and "(hospital), in force since height" in org.output


# -- consent --------------------------------------------------------------------------------------


def test_a_patient_grants_consent_signed_on_the_client(home: Path, directory: Path, client: InProcessClient) -> None:
    result = run(
        home,
        "consent",
        "grant",
        "--key",
        key_file(directory, PATIENT, "patient"),
        "--grantee",
        NURSE.public_key.hex(),
        "--category",
        "vital-signs",
        "--purpose",
        "TREAT",
        "--expires",
        "2099-12-31",
        "--wait",
        "--json",
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert (answer["status"], answer["type"], answer["sender"], answer["nonce"]) == ("committed", "consent.grant", P, 4)
    stored = client.ledger.store.transaction(bytes.fromhex(answer["tx_id"]))
    assert stored is not None and stored.tx.body["expires_ms"] == UtcTime().convert(
        "2100-01-01", None, None
    )  # through 2099-12-31
    shown = run(home, "consent", "show", P)
    assert (
        "vital-signs   to " + NURSE.public_key.hex() in shown.output
        and f"delegate {HOSPITAL.public_key.hex()}" in shown.output
    )


def test_a_refusal_in_the_block_prints_the_reason_and_exits_1(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    result = run(
        home,
        "consent",
        "grant",
        "--key",
        key_file(directory, PATIENT, "patient"),
        "--grantee",
        "ab" * 32,
        "--category",
        "imaging",
        "--purpose",
        "TREAT",
        "--expires",
        "2099-12-31",
        "--wait",
    )
    assert result.exit_code == 1
    assert (
        "the ledger refused consent.grant (invalid): the grantee is neither a person nor an organisation in force"
        in result.output
    )


def test_a_refusal_at_submission_exits_1_with_the_reason(home: Path, directory: Path, client: InProcessClient) -> None:
    async def refuse(params: dict[str, Any]) -> None:
        raise RpcError(ErrorCode.REJECTED_TRANSACTION, "nonce 4 is already waiting", {"reason": "nonce-pending"})

    client.methods["tx.submit"] = Method(refuse, {"tx": bytes})
    result = run(home, "trial", "consent", TRIAL, "--key", key_file(directory, PATIENT, "patient"))
    assert (
        result.exit_code == 1
        and "the node refused trial.consent: nonce 4 is already waiting [nonce-pending]" in result.output
    )


def test_wait_gives_up_after_its_timeout(home: Path, directory: Path, client: InProcessClient) -> None:
    async def pending(params: dict[str, Any]) -> dict[str, Any]:
        return {"tx_id": params["tx_id"].hex(), "status": "pending"}

    async def accept(params: dict[str, Any]) -> dict[str, Any]:
        return {"tx_id": decode_transaction(params["tx"]).id.hex(), "status": "pending"}

    client.methods["tx.submit"], client.methods["tx.get"] = (
        Method(accept, {"tx": bytes}),
        Method(pending, {"tx_id": bytes}),
    )
    result = run(
        home,
        "consent",
        "undelegate",
        "--key",
        key_file(directory, PATIENT, "patient"),
        "--delegate",
        HOSPITAL.public_key.hex(),
        "--wait",
        "--timeout",
        "0.3",
    )
    assert result.exit_code == 1 and "is still pending after 0.3 s" in result.output


def test_consent_show_fhir_prints_a_bundle_of_consents(home: Path, client: InProcessClient) -> None:
    bundle = json.loads(run(home, "consent", "show", P, "--fhir").output)
    assert bundle["type"] == "collection" and {entry["resource"]["resourceType"] for entry in bundle["entry"]} == {
        "Consent"
    }


def consent_r4_file(directory: Path) -> Path:
    """An R4 opt-out Consent: the nurse may see vital signs and laboratory data for treatment
    and payment, except payment on laboratory data (a nested deny)."""
    resource = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/7"},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTOUT"}]},
        "provision": {
            "period": {"end": "2099-12-31"},
            "actor": [{"role": {"text": "recipient"}, "reference": {"reference": "Practitioner/nurse"}}],
            "class": [{"system": "urn:p2pmed:data-category", "code": c} for c in ("vital-signs", "laboratory")],
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": c} for c in ("TREAT", "HPAYMT")
            ],
            "provision": [
                {
                    "type": "deny",
                    "class": [{"system": "urn:p2pmed:data-category", "code": "laboratory"}],
                    "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HPAYMT"}],
                }
            ],
        },
    }
    path = directory / "consent.json"
    path.write_text(json.dumps(resource))
    return path


def test_a_fhir_consent_is_granted_as_the_grants_and_denies_it_means(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    path, nurse = consent_r4_file(directory), NURSE.public_key.hex()
    refs = ["--ref", f"Patient/7={P}", "--ref", f"Practitioner/nurse={nurse}"]
    checked = CliRunner().invoke(cli, ["fhir", "import-check", str(path), "--release", "R4", *refs])
    assert checked.exit_code == 0, checked.output
    assert (
        f"Consent.provision: consent.grant by patient {P}: grant to {nurse}: laboratory, vital-signs" in checked.output
    )
    assert f"Consent.provision.provision[0]: consent.deny by patient {P}: deny of {nurse}: laboratory for HPAYMT" in (
        checked.output
    )
    patient_key = key_file(directory, PATIENT, "patient")
    result = run(
        home, "consent", "grant", "--key", patient_key, "--fhir", str(path), "--release", "R4", *refs, "--json"
    )
    assert result.exit_code == 0, result.output
    done = json.loads(result.output)
    assert [(each["provision"], each["type"], each["status"]) for each in done] == [
        ("Consent.provision", "consent.grant", "committed"),
        ("Consent.provision.provision[0]", "consent.deny", "committed"),
    ]
    shown = run(home, "consent", "show", P).output
    assert f"vital-signs   to {nurse} for HPAYMT" in shown and f"laboratory    to {nurse} for TREAT" in shown
    assert f"DENIED laboratory    to {nurse} for HPAYMT until 2100-01-01T00:00:00Z" in shown
    bundle = json.loads(run(home, "consent", "show", P, "--fhir").output)
    assert sorted(entry["resource"]["decision"] for entry in bundle["entry"]).count("permit") == 1
    clash = run(home, "consent", "grant", "--key", patient_key, "--fhir", str(path), "--grantee", nurse)
    assert clash.exit_code == 2 and "leave out --grantee" in clash.output
    other = run(home, "consent", "grant", "--key", patient_key, "--fhir", str(path), *refs, "--patient", nurse)
    assert other.exit_code == 2 and "Consent.provision: Input should be a valid list (FHIR R5)" in other.output
    wrong = run(
        home,
        "consent",
        "grant",
        "--key",
        patient_key,
        "--fhir",
        str(path),
        "--release",
        "R4",
        *refs,
        "--patient",
        nurse,
    )
    assert wrong.exit_code == 2 and f"is not the Consent's subject {P}" in wrong.output


def test_a_patient_denies_a_grantee_or_everyone_and_lifts_it(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    patient_key, doctor = key_file(directory, PATIENT, "patient"), DOCTOR.public_key.hex()
    granted = run(
        home,
        "consent",
        "grant",
        "--key",
        patient_key,
        "--grantee",
        doctor,
        "--category",
        "genomics",
        "--purpose",
        "TREAT",
        "--purpose",
        "HPAYMT",
        "--expires",
        "2099-12-31",
        "--wait",
    )
    assert granted.exit_code == 0, granted.output
    denied = run(home, "consent", "deny", "--key", patient_key, "--everyone", "--category", "genomics", "--wait")
    assert denied.exit_code == 0, denied.output
    gone = client.call("consent.get", patient=P, grantee=doctor, category="genomics")
    assert gone is None, "a deny of everyone overrides the doctor's consent"
    shown = run(home, "consent", "show", P).output
    assert "DENIED genomics      to everyone for TREAT until never" in shown
    lifted = run(home, "consent", "undeny", "--key", patient_key, "--everyone", "--category", "genomics", "--wait")
    assert lifted.exit_code == 0, lifted.output
    assert client.call("consent.get", patient=P, grantee=doctor, category="genomics")["purpose"] == "HPAYMT"
    both = run(
        home, "consent", "deny", "--key", patient_key, "--everyone", "--grantee", doctor, "--category", "imaging"
    )
    assert both.exit_code == 2 and "exactly one of --grantee and --everyone" in both.output
    missing = run(home, "consent", "grant", "--key", patient_key, "--grantee", doctor, "--category", "imaging")
    assert missing.exit_code == 2 and "give --purpose, --expires (or a FHIR Consent with --fhir)" in missing.output


# -- audit ---------------------------------------------------------------------------------------------


def test_audit_show_marks_break_glass_and_prints_fhir(home: Path, client: InProcessClient) -> None:
    human = run(home, "audit", "show", "--patient", P)
    assert human.exit_code == 0, human.output
    [marked] = [line for line in human.output.splitlines() if line.startswith("!")]
    assert "break-glass" in marked and "reason sha256 " in marked
    bundle = json.loads(run(home, "audit", "show", "--actor", NURSE.public_key.hex(), "--fhir").output)
    [event] = [AuditEvent.model_validate(entry["resource"]) for entry in bundle["entry"]]
    assert any(coding.code == "BTG" for concept in event.authorization for coding in concept.coding)


def test_audit_show_filters_by_time(home: Path, client: InProcessClient) -> None:
    result = run(home, "audit", "show", "--actor", DOCTOR.public_key.hex(), "--since", "2100-01-01", "--json")
    assert json.loads(result.output)["entries"] == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["audit", "show"], "exactly one of --patient, --actor, --record"),
        (["audit", "show", "--patient", P, "--record", P], "exactly one of --patient, --actor, --record"),
        (["audit", "show", "--patient", "xyz"], "'xyz' is not hex"),
        (["audit", "show", "--patient", "abcd"], "must be 64 hex digits, got 4"),
        (["audit", "show", "--patient", P, "--since", "yesterday"], "is not a date"),
        (
            [
                "consent",
                "grant",
                "--key",
                "/nonexistent.pem",
                "--grantee",
                P,
                "--category",
                "imaging",
                "--purpose",
                "TREAT",
                "--expires",
                "2030-01-01",
            ],
            "no such key file",
        ),
        (
            [
                "consent",
                "grant",
                "--key",
                "/nonexistent.pem",
                "--grantee",
                P,
                "--category",
                "dna",
                "--purpose",
                "TREAT",
                "--expires",
                "2030-01-01",
            ],
            "'dna' is not one of",
        ),
        (["trial", "register", TRIAL, "--key", "/nonexistent.pem", "--primary", "x"], "exactly one of --protocol FILE"),
    ],
)
def test_bad_input_exits_2_before_asking_the_node(home: Path, args: list[str], fragment: str) -> None:
    result = run(home, *args)
    assert result.exit_code == 2 and fragment in result.output, result.output


def test_without_a_running_node_reads_exit_1(home: Path) -> None:
    result = run(home, "consent", "show", P)
    assert result.exit_code == 1 and "no node is running" in result.output


# -- trials ----------------------------------------------------------------------------------------------


def test_trial_show_verify_and_flagged(home: Path, client: InProcessClient) -> None:
    shown = run(home, "trial", "show", TRIAL)
    assert "FLAGGED: outcome switching" in shown.output and "promoted to primary" in shown.output
    assert run(home, "trial", "verify", TRIAL, "--dataset-sha256", DATASET.hex()).exit_code == 0
    other = run(home, "trial", "verify", TRIAL, "--dataset-sha256", "00" * 32)
    assert other.exit_code == 1 and "is NOT an anchored result" in other.output
    assert run(home, "trial", "flagged").output.startswith(f"{TRIAL} (sponsor {SPONSOR.public_key.hex()[:16]}")
    missing = run(home, "trial", "show", "NCT99")
    assert missing.exit_code == 1 and "no trial 'NCT99' is registered" in missing.output


def test_a_sponsor_registers_a_trial_from_its_protocol_file(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    protocol = directory / "protocol.pdf"
    protocol.write_bytes(b"%PDF protocol v1")
    result = run(
        home,
        "trial",
        "register",
        "NCT00000002",
        "--key",
        key_file(directory, SPONSOR, "sponsor"),
        "--protocol",
        str(protocol),
        "--primary",
        "HbA1c  at 12 Weeks",
        "--secondary",
        "Weight",
        "--wait",
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(run(home, "trial", "show", "NCT00000002", "--json").output)
    assert shown["protocol"]["sha256"] == hashlib.sha256(b"%PDF protocol v1").hexdigest()
    assert (shown["protocol"]["primary_endpoints"], shown["protocol"]["secondary_endpoints"]) == (
        ["hba1c at 12 weeks"],
        ["weight"],
    )


# -- supply --------------------------------------------------------------------------------------------------


def test_supply_trace_verify_and_alerts(home: Path, client: InProcessClient) -> None:
    assert "commission" in run(home, "supply", "trace", GTIN, "S1").output
    assert run(home, "supply", "verify", GTIN, "S1").output.startswith("OK: genuine-dispensable")
    fake = run(home, "supply", "verify", GTIN, "FAKE2")
    assert fake.exit_code == 1 and fake.output.startswith("DO NOT DISPENSE: unknown-suspect-counterfeit")
    assert "1 alert in all" in run(home, "supply", "alerts").output
    reach = run(home, "supply", "lot", GTIN, "LOT1").output
    assert reach.startswith(f"lot LOT1 of GTIN {GTIN}, expiry 2099-12-31, not recalled") and "2 packs" in reach
    unknown = run(home, "supply", "lot", GTIN, "NOPE")
    assert unknown.exit_code == 1 and "no pack of lot 'NOPE'" in unknown.output
    bad = run(home, "supply", "trace", "123", "S1")
    assert bad.exit_code == 1 and "must be 14 digits" in bad.output


# -- fhir --------------------------------------------------------------------------------------------------------


def test_fhir_import_check_maps_or_names_the_problem(directory: Path) -> None:
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "pulse"},
        "subject": {"reference": "Patient/7"},
        "category": [
            {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}
                ]
            }
        ],
    }
    path = directory / "obs.json"
    path.write_text(json.dumps(observation))
    ok = CliRunner().invoke(cli, ["fhir", "import-check", str(path), "--ref", f"Patient/7={P}"])
    assert ok.exit_code == 0 and f"a vital-signs record of patient {P}" in ok.output
    unmapped = CliRunner().invoke(cli, ["fhir", "import-check", str(path)])
    assert unmapped.exit_code == 2 and "Observation.subject.reference: 'Patient/7' is not mapped" in unmapped.output
    bad_ref = CliRunner().invoke(cli, ["fhir", "import-check", str(path), "--ref", "Patient/7"])
    assert bad_ref.exit_code == 2 and "expected NAME=HEX" in bad_ref.output


def test_expiry_dates_hold_through_their_day() -> None:
    end_of_day = UtcTime(end_of_day=True)
    assert end_of_day.convert("2030-06-30", None, None) == UtcTime().convert("2030-07-01", None, None)
    assert end_of_day.convert("2030-06-30T12:00Z", None, None) == UtcTime().convert(
        "2030-06-30T14:00:00+02:00", None, None
    )
    assert UtcTime().convert("2030-06-30T12:00", None, None) == UtcTime().convert("2030-06-30T12:00Z", None, None)
