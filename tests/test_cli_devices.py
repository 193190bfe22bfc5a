"""Medical devices through the CLI on a network of real node processes: a hospital registers
a monitor, the monitor sends a batch of readings (FHIR Observations without a category,
filed by their LOINC codes), a clinician is refused until the patient consents and then
reads them back as FHIR Observations naming the device, proves one reading, and the proof
checks offline (an altered one does not); the hospital revokes the monitor and its next
batch is refused. Bad input exits 2 before any node is asked."""

from __future__ import annotations

import json
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from p2pmed.cli.main import cli
from p2pmed.client.records import submit
from p2pmed.crypto import EncryptionPrivateKey, SigningKey, save_encryption_key, save_signing_key
from p2pmed.interop.fhir_devices import udi_reference
from p2pmed.ledger.contracts.identity import PersonRegister
from p2pmed.rpc.client import RpcClient
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import load_home
from p2pmed.testing.process_network import ProcessNetwork

pytestmark = pytest.mark.xdist_group("device-network")  # one worker, one network (--dist loadgroup)

HOSPITAL_SITE = 0
CONFIG = NodeConfig(request_timeout_ms=1_500, view_change_timeout_ms=1_500)
WAIT_S = 60.0
GTIN, SERIAL = "09506000134352", "MON-0001"
LOINC = "http://loinc.org"


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args[:2], "--home", str(home), *args[2:]])


def reading(code: str, value: float, unit: str) -> dict[str, Any]:
    """A device reading as many devices send it: no category, a LOINC code."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": "Patient/7"},
        "effectiveDateTime": "2026-12-01T08:00:00Z",
        "valueQuantity": {"value": value, "unit": unit},
    }


READINGS = [reading("8867-4", 72, "/min"), reading("59408-5", 97, "%"), reading("8480-6", 128, "mm[Hg]")]


@pytest.fixture(scope="module")
def net() -> Iterator[ProcessNetwork]:
    with tempfile.TemporaryDirectory(prefix="p2pmed-dev-") as directory:
        network = ProcessNetwork(Path(directory), 4, CONFIG)
        try:
            network.start_all(WAIT_S)
            yield network
        finally:
            network.close()


def register(net: ProcessNetwork, role: str, name: str) -> tuple[str, str, str]:
    """A person the hospital registers: (id, key file, encryption key file)."""
    key, encryption = SigningKey.generate(), EncryptionPrivateKey.generate()
    site = load_home(net.homes[HOSPITAL_SITE])
    with RpcClient(site.socket_path) as rpc:
        submit(rpc, site.key, "identity.person.register", PersonRegister(key.public_key, role, encryption.public_key))
    save_signing_key(net.directory / f"{name}.pem", key)
    save_encryption_key(net.directory / f"{name}.enc", encryption)
    return key.public_key.hex(), str(net.directory / f"{name}.pem"), str(net.directory / f"{name}.enc")


def test_a_device_registers_sends_is_read_proved_and_revoked_through_the_cli(net: ProcessNetwork) -> None:
    hospital = net.homes[HOSPITAL_SITE]
    hospital_key = str(hospital / "node_key.pem")
    patient_id, patient_key, _ = register(net, "patient", "patient")
    clinician_id, clinician_key, clinician_encryption = register(net, "clinician", "clinician")
    monitor = SigningKey.generate()
    save_signing_key(net.directory / "monitor.pem", monitor)
    udi = ("--gtin", GTIN, "--serial", SERIAL)

    registered = run(
        hospital, "device", "register", "--key", hospital_key, *udi, "--device-key", monitor.public_key.hex(), "--wait"
    )
    assert registered.exit_code == 0, registered.output
    shown = json.loads(run(hospital, "device", "show", GTIN, SERIAL, "--fhir").output)
    assert (shown["resourceType"], shown["status"], shown["udiCarrier"][0]["carrierHRF"]) == (
        "Device",
        "active",
        f"(01){GTIN}(21){SERIAL}",
    )

    readings = net.directory / "readings.json"
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in READINGS]}
    readings.write_text(json.dumps(bundle))
    send = ("device", "send", "--key", str(net.directory / "monitor.pem"), *udi, "--fhir", str(readings))
    sent = run(hospital, *send, "--ref", f"Patient/7={patient_id}", "--json")
    assert sent.exit_code == 0, sent.output
    assert (json.loads(sent.output)["batch"], json.loads(sent.output)["readings"]) == (1, 3)

    read = ("device", "read", "--key", clinician_key, "--encryption-key", clinician_encryption, *udi, "--batch", "1")
    refused = run(hospital, *read)
    assert refused.exit_code == 1 and "no consent in force lets this reader see vital-signs records" in refused.output
    granted = run(
        *(hospital, "consent", "grant", "--key", patient_key, "--grantee", clinician_id),
        *("--category", "vital-signs", "--purpose", "TREAT", "--expires", "2099-12-31", "--wait"),
    )
    assert granted.exit_code == 0, granted.output
    observations = run(hospital, *read)
    assert observations.exit_code == 0, observations.output
    entries = [entry["resource"] for entry in json.loads(observations.output)["entry"]]
    assert [entry["code"]["coding"][0]["code"] for entry in entries] == ["8867-4", "59408-5", "8480-6"]
    assert all(entry["device"] == udi_reference(GTIN, SERIAL) for entry in entries)

    proof = net.directory / "proof.json"
    proved = run(hospital, "device", "prove", *read[2:], "--reading", "1", "--out", str(proof))
    assert proved.exit_code == 0, proved.output
    assert stat.S_IMODE(proof.stat().st_mode) == 0o600
    verified = CliRunner().invoke(cli, ["device", "verify", str(proof)])
    assert verified.exit_code == 0, verified.output
    assert f"OK: reading 1 of batch 1 of device (01){GTIN}(21){SERIAL}" in verified.output
    assert "certified by block" in verified.output
    altered = json.loads(proof.read_text())
    altered["observation"]["valueQuantity"]["value"] = 88
    (net.directory / "altered.json").write_text(json.dumps(altered))
    refused_proof = CliRunner().invoke(cli, ["device", "verify", str(net.directory / "altered.json")])
    assert refused_proof.exit_code == 1 and "do not lead to the batch's Merkle root" in refused_proof.output
    another_batch = {**json.loads(proof.read_text()), "sequence": 2}  # the inclusion proof does not name the batch
    (net.directory / "another.json").write_text(json.dumps(another_batch))
    refused_anchor = CliRunner().invoke(cli, ["device", "verify", str(net.directory / "another.json")])
    assert refused_anchor.exit_code == 1 and "the state proof is not of batch anchor" in refused_anchor.output

    revoked = run(hospital, "device", "revoke", "--key", hospital_key, *udi, "--wait")
    assert revoked.exit_code == 0, revoked.output
    assert "REVOKED" in run(hospital, "device", "show", GTIN, SERIAL).output
    after = run(hospital, *send, "--ref", f"Patient/7={patient_id}")
    assert after.exit_code == 1 and "nor an organisation, person or device in force" in after.output, after.output


# -- bad input: exit 2, no node asked ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["device", "register", "--key", "{key}", "--device-key", "ab" * 32], "name the device: --gtin GTIN"),
        (
            [
                *("device", "register", "--key", "{key}", "--gtin", GTIN, "--serial", "S", "--fhir", "{readings}"),
                *("--device-key", "ab" * 32),
            ],
            "not both",
        ),
        (
            ["device", "register", "--key", "{key}", "--fhir", "{readings}", "--device-key", "ab" * 32],
            "p2pmed imports Device",
        ),
        (
            ["device", "register", "--key", "{key}", "--gtin", GTIN, "--serial", "S", "--device-key", "ab"],
            "64 hex digits",
        ),
        (["device", "revoke", "--key", "{key}", "--gtin", "123", "--serial", "S"], "GTIN '123' must be 14 digits"),
        (
            ["device", "send", "--key", "{key}", "--gtin", GTIN, "--serial", "S", "--fhir", "{readings}"],
            "Bundle.entry[0].resource.subject.reference: 'Patient/7' is not mapped",
        ),
        (
            [
                "device",
                "send",
                "--key",
                "{key}",
                "--gtin",
                GTIN,
                "--serial",
                "S",
                "--fhir",
                "{other}",
                "--ref",
                "Patient/7=" + "ab" * 32,
            ],
            "names another device",
        ),
        (["device", "show", GTIN, "S!~"], "must be 1..20 characters of GS1 set 82"),
        (["device", "verify", "{readings}"], "not a reading proof"),
        (["device", "verify", "{key}"], "not JSON"),
    ],
)
def test_bad_input_exits_2_before_asking_the_node(directory: Path, home: Path, args: list[str], fragment: str) -> None:
    key = directory / "site.pem"
    save_signing_key(key, SigningKey.generate())
    readings = directory / "readings.json"
    readings.write_text(json.dumps({"resourceType": "Bundle", "entry": [{"resource": READINGS[0]}]}))
    other = directory / "other.json"
    other.write_text(json.dumps({**READINGS[0], "device": {"reference": "Device/1"}}))
    files = {"key": str(key), "readings": str(readings), "other": str(other)}
    formatted = [arg.format(**files) for arg in args]
    result = CliRunner().invoke(
        cli, formatted if args[1] == "verify" else [*formatted[:2], "--home", str(home), *formatted[2:]]
    )
    expected = 1 if fragment == "not a reading proof" else 2
    assert result.exit_code == expected and fragment in result.output, result.output
