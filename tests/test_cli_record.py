"""The record and supply write commands. Supply writes run against the in-process fake
node of test_cli_health (real rules on a real store); records need custodians, so they
run end to end on one small network of real node processes: a lab writes a FHIR
Observation, its patient reads it, a clinician without consent is refused, the patient
erases it and it no longer opens. Bad input exits 2 before any node is asked."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from health_world import GTIN, HOSPITAL, MAKER, PATIENT, PHARMACY, InProcessClient
from p2pmed.cli.main import cli
from p2pmed.cli.record import PLAINTEXT_SIZE_MAX
from p2pmed.client.records import submit
from p2pmed.crypto import EncryptionPrivateKey, SigningKey, save_encryption_key, save_signing_key
from p2pmed.interop.fhir import import_resource
from p2pmed.ledger.contracts.identity import PersonRegister
from p2pmed.rpc.client import RpcClient
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import load_home
from p2pmed.testing.process_network import ProcessNetwork

MAKER_HEX, PHARMACY_HEX = MAKER.public_key.hex(), PHARMACY.public_key.hex()
PHARMACY_GLN = "urn:epc:id:sgln:9501101.00002.0"
HOSPITAL_SITE, LAB_SITE = 0, 1  # testnet kinds cycle hospital, laboratory, pharmacy, distributor
CONFIG = NodeConfig(request_timeout_ms=1_500, view_change_timeout_ms=1_500)
WAIT_S = 60.0


def observation(subject: dict[str, Any], category: str = "laboratory") -> dict[str, Any]:
    coding = {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "serum potassium"},
        "subject": subject,
        "category": [{"coding": [coding]}],
        "valueQuantity": {"value": 6.1, "unit": "mmol/L"},
    }


def write_json(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value))
    return str(path)


def key_file(directory: Path, key: SigningKey, name: str) -> str:
    path = directory / f"{name}.pem"
    if not path.exists():
        save_signing_key(path, key)
    return str(path)


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args[:2], "--home", str(home), *args[2:]])


# -- supply writes, against the in-process node ---------------------------------------------


def signed(home: Path, directory: Path, signer: SigningKey, *args: str) -> Result:
    """Run a supply write signed by ``signer``, waiting for its block."""
    return run(home, *args, "--key", key_file(directory, signer, signer.public_key.hex()[:8]), "--wait", "--json")


def test_a_pack_goes_from_commissioning_through_a_shipment_to_dispensing(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    commissioned = signed(
        home,
        directory,
        MAKER,
        "supply",
        "commission",
        "--gtin",
        GTIN,
        "--lot",
        "LOT1",
        "--expiry",
        "2099-12-31",
        "--serial",
        "S3",
        "--serial",
        "S4",
    )
    assert commissioned.exit_code == 0, commissioned.output
    assert json.loads(commissioned.output)["type"] == "supply.commission"
    shipped = signed(
        home, directory, MAKER, "supply", "ship", "--to", PHARMACY_HEX, "--pack", f"{GTIN}:S3", "--pack", f"{GTIN}:S4"
    )
    assert shipped.exit_code == 0, shipped.output
    shipment = json.loads(shipped.output)["tx_id"]
    received = signed(
        home,
        directory,
        PHARMACY,
        "supply",
        "receive",
        "--shipment",
        shipment,
        "--pack",
        f"{GTIN}:S3",
        "--missing",
        f"{GTIN}:S4",
    )
    assert received.exit_code == 0, received.output
    assert signed(home, directory, PHARMACY, "supply", "dispense", "--pack", f"{GTIN}:S3").exit_code == 0
    assert (
        signed(
            home, directory, MAKER, "supply", "decommission", "--pack", f"{GTIN}:S2", "--reason", "damaged"
        ).exit_code
        == 0
    )
    assert (
        signed(
            home, directory, MAKER, "supply", "recall", "--gtin", GTIN, "--serial", "S1", "--reason", "sterility"
        ).exit_code
        == 0
    )
    assert (
        signed(
            home, directory, PHARMACY, "supply", "scan", f"{GTIN}:FAKE9", "--lot", "LOT1", "--expiry", "2099-12-31"
        ).exit_code
        == 0
    )

    trace = json.loads(run(home, "supply", "trace", GTIN, "S3", "--json").output)
    assert [event["kind"] for event in trace["events"]] == ["commission", "ship", "receive", "dispense"]
    assert json.loads(run(home, "supply", "trace", GTIN, "S2", "--json").output)["pack"]["status"] == "decommissioned"
    assert run(home, "supply", "verify", GTIN, "S1").output.startswith("DO NOT DISPENSE: recalled")
    alerts = json.loads(run(home, "supply", "alerts", "--json").output)["alerts"]
    assert [(alert["kind"], alert["serial"]) for alert in alerts[1:]] == [
        ("missing-in-transit", "S4"),
        ("unknown-suspect-counterfeit", "FAKE9"),
    ]


@pytest.mark.parametrize(
    ("signer", "args", "refusal"),
    [
        (
            PHARMACY,
            ["commission", "--gtin", GTIN, "--lot", "L9", "--expiry", "2099-12-31", "--serial", "X1"],
            "supply.commission (not-authorised): only a manufacturer commissions packs; the sender is a pharmacy",
        ),
        (
            MAKER,
            ["ship", "--to", "ab" * 32, "--pack", f"{GTIN}:S1"],
            "supply.ship (invalid): the destination is not an organisation in force",
        ),
        (
            PHARMACY,
            ["receive", "--shipment", "cd" * 32, "--pack", f"{GTIN}:S1"],
            f"supply.receive (invalid): no shipment has id {'cd' * 32}",
        ),
        (
            MAKER,
            ["dispense", "--pack", f"{GTIN}:S1"],
            "supply.dispense (not-authorised): only a hospital or pharmacy dispenses packs",
        ),
        (
            PHARMACY,
            ["decommission", "--pack", f"{GTIN}:S1", "--reason", "lost"],
            f"supply.decommission (not-authorised): pack (01){GTIN}(21)S1 is held by {MAKER_HEX[:16]}, not by the "
            "sender",
        ),
        (
            PHARMACY,
            ["recall", "--gtin", GTIN, "--lot", "LOT1", "--reason", "x"],
            f"supply.recall (not-authorised): only GTIN {GTIN}'s manufacturer {MAKER_HEX[:16]} recalls its packs",
        ),
        (
            PATIENT,
            ["scan", f"{GTIN}:S1", "--lot", "LOT1", "--expiry", "2099-12-31"],
            "supply.verify (not-authorised): only an organisation in force records scans",
        ),
    ],
)
def test_a_supply_write_the_ledger_refuses_exits_1_with_its_reason(
    home: Path, directory: Path, client: InProcessClient, signer: SigningKey, args: list[str], refusal: str
) -> None:
    result = signed(home, directory, signer, "supply", *args)
    assert result.exit_code == 1 and f"error: the ledger refused {refusal}" in result.output, result.output


def epcis_event(step: str, action: str, serials: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T09:30:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": action,
        "bizStep": step,
        "epcList": [f"https://id.gs1.org/01/{GTIN}/21/{serial}" for serial in serials],
        **fields,
    }


def epcis_document(*events: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-03-01T10:00:00Z",
        "epcisBody": {"eventList": list(events)},
    }


def test_import_epcis_submits_events_in_order_and_stops_at_the_first_refusal(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    ilmd = {"cbvmda:lotNumber": "LOT2", "cbvmda:itemExpirationDate": "2099-12-31"}
    shipping = epcis_event(
        "shipping", "OBSERVE", ["E1", "E2"], destinationList=[{"type": "owning_party", "destination": PHARMACY_GLN}]
    )
    sent = write_json(
        directory / "sent.json", epcis_document(epcis_event("commissioning", "ADD", ["E1", "E2"], ilmd=ilmd), shipping)
    )
    result = run(
        home,
        "supply",
        "import-epcis",
        sent,
        "--key",
        key_file(directory, MAKER, "maker"),
        "--party",
        f"{PHARMACY_GLN}={PHARMACY_HEX}",
    )
    assert result.exit_code == 0, result.output
    assert "$.epcisBody.eventList[1]  supply.ship" in result.output and "2 transactions from" in result.output

    arrived = write_json(directory / "arrived.json", epcis_document(epcis_event("receiving", "OBSERVE", ["E1", "E2"])))
    received = run(
        home, "supply", "import-epcis", arrived, "--key", key_file(directory, PHARMACY, "pharmacy"), "--json"
    )
    assert received.exit_code == 0, received.output
    assert [(each["event"], each["type"], each["status"]) for each in json.loads(received.output)] == [
        ("$.epcisBody.eventList[0]", "supply.receive", "committed")
    ]

    mixed = write_json(
        directory / "mixed.json",
        epcis_document(
            epcis_event("commissioning", "ADD", ["E3"], ilmd=ilmd), epcis_event("dispensing", "OBSERVE", ["E3"])
        ),
    )
    refused = run(home, "supply", "import-epcis", mixed, "--key", key_file(directory, MAKER, "maker"))
    assert refused.exit_code == 1
    assert (
        "error: $.epcisBody.eventList[1]: the ledger refused supply.dispense (not-authorised): only a hospital or "
        "pharmacy" in refused.output
    )
    assert json.loads(run(home, "supply", "trace", GTIN, "E3", "--json").output)["pack"]["status"] == "held"


def test_import_epcis_ships_and_receives_in_one_document_each_signed_by_its_party(
    home: Path, directory: Path, client: InProcessClient
) -> None:
    ilmd = {"cbvmda:lotNumber": "LOT2", "cbvmda:itemExpirationDate": "2099-12-31"}
    at_pharmacy = {"bizLocation": {"id": PHARMACY_GLN}}
    story = write_json(
        directory / "story.json",
        epcis_document(
            epcis_event("commissioning", "ADD", ["D1", "D2"], ilmd=ilmd),
            epcis_event("shipping", "OBSERVE", ["D1", "D2"]),  # no destinationList: received below, at the pharmacy
            epcis_event("receiving", "OBSERVE", ["D1", "D2"], **at_pharmacy),
        ),
    )
    maker = ("--key", key_file(directory, MAKER, "maker"), "--party", f"{PHARMACY_GLN}={PHARMACY_HEX}")
    missing = run(home, "supply", "import-epcis", story, *maker)
    assert missing.exit_code == 2 and "give its key with --receiver-key" in missing.output
    assert json.loads(run(home, "supply", "trace", GTIN, "D1", "--json").output)["pack"] is None, "nothing submitted"
    done = run(
        home, "supply", "import-epcis", story, *maker, "--receiver-key", key_file(directory, PHARMACY, "pharmacy")
    )
    assert done.exit_code == 0, done.output
    trace = json.loads(run(home, "supply", "trace", GTIN, "D2", "--json").output)
    assert [event["kind"] for event in trace["events"]] == ["commission", "ship", "receive"]
    assert trace["pack"]["holder"] == PHARMACY_HEX


# -- bad input: exit 2, no node asked ----------------------------------------------------------


@dataclass(frozen=True)
class Files:
    """Key files and inputs for the bad-input cases."""

    key: str
    encryption_key: str
    fhir: str
    patient_resource: str
    content: str
    big: str
    bare: str


@pytest.fixture
def files(directory: Path) -> Files:
    encryption_key = directory / "reader.enc"
    save_encryption_key(encryption_key, EncryptionPrivateKey.generate())
    (directory / "content.bin").write_bytes(b"\x00\x01")
    (directory / "big.bin").write_bytes(b"x" * (PLAINTEXT_SIZE_MAX + 1))
    return Files(
        key_file(directory, HOSPITAL, "site"),
        str(encryption_key),
        write_json(directory / "obs.json", observation({"reference": "Patient/7"})),
        write_json(directory / "patient.json", {"resourceType": "Patient", "id": "7"}),
        str(directory / "content.bin"),
        str(directory / "big.bin"),
        write_json(directory / "bare.json", {**observation({"reference": "Patient/7"}), "category": []}),
    )


P = PATIENT.public_key.hex()
REF = f"Patient/7={P}"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (
            ["record", "add", "--key", "{key}", "--patient", P, "--category", "imaging"],
            "give exactly one of --file FILE and --fhir FILE",
        ),
        (
            ["record", "add", "--key", "{key}", "--file", "{content}", "--fhir", "{fhir}"],
            "give exactly one of --file FILE and --fhir FILE",
        ),
        (
            ["record", "add", "--key", "{key}", "--file", "{content}", "--patient", P],
            "--file needs --patient and --category",
        ),
        (
            [
                "record",
                "add",
                "--key",
                "{key}",
                "--file",
                "{content}",
                "--patient",
                P,
                "--category",
                "imaging",
                "--ref",
                REF,
            ],
            "--ref maps references in a FHIR resource",
        ),
        (
            ["record", "add", "--key", "{key}", "--file", "{big}", "--patient", P, "--category", "imaging"],
            f"more than {PLAINTEXT_SIZE_MAX} bytes",
        ),
        (
            ["record", "add", "--key", "{key}", "--file", "/nonexistent", "--patient", P, "--category", "imaging"],
            "/nonexistent: No such file or directory",
        ),
        (["record", "add", "--key", "/nonexistent.pem", "--fhir", "{fhir}", "--ref", REF], "no such key file"),
        (
            ["record", "add", "--key", "{key}", "--fhir", "{fhir}"],
            "Observation.subject.reference: 'Patient/7' is not mapped",
        ),
        (
            ["record", "add", "--key", "{key}", "--fhir", "{fhir}", "--ref", REF, "--category", "imaging"],
            "--category imaging is not the resource's category laboratory",
        ),
        (
            ["record", "add", "--key", "{key}", "--fhir", "{fhir}", "--ref", REF, "--patient", "ab" * 32],
            f"--patient {'ab' * 32} is not the resource's subject {P}",
        ),
        (
            ["record", "add", "--key", "{key}", "--fhir", "{bare}", "--ref", REF],
            "Observation.category: no coding of http://terminology.hl7.org/CodeSystem/observation-category",
        ),
        (
            ["record", "add", "--key", "{key}", "--fhir", "{patient_resource}"],
            "only an Observation, Condition or MedicationRequest",
        ),
        (["record", "add", "--key", "{key}", "--fhir", "{fhir}", "--ref", "Patient/7"], "expected NAME=HEX"),
        (
            [
                "record",
                "read",
                "--key",
                "{key}",
                "--encryption-key",
                "{encryption_key}",
                "--record",
                P,
                "--out",
                "{content}",
            ],
            "already exists; refusing to overwrite it",
        ),
        (
            ["record", "read", "--key", "{key}", "--encryption-key", "{key}", "--record", P],
            "not a p2pmed encryption key file",
        ),
        (
            [
                "record",
                "read",
                "--key",
                "{key}",
                "--encryption-key",
                "{encryption_key}",
                "--record",
                P,
                "--purpose",
                "FUN",
            ],
            "'FUN' is not one of",
        ),
        (["record", "erase", "--key", "{key}", "--record", "xyz"], "'xyz' is not hex"),
        (["record", "show", "--record", "abcd"], "must be 64 hex digits, got 4"),
        (
            [
                "supply",
                "commission",
                "--key",
                "{key}",
                "--gtin",
                GTIN,
                "--lot",
                "L",
                "--expiry",
                "2030-13-01",
                "--serial",
                "S",
            ],
            "expiry '2030-13-01' must be a date as YYYY-MM-DD",
        ),
        (
            [
                "supply",
                "commission",
                "--key",
                "{key}",
                "--gtin",
                "12345678901234",
                "--lot",
                "L",
                "--expiry",
                "2030-12-01",
                "--serial",
                "S",
            ],
            "GTIN 12345678901234 has a wrong check digit",
        ),
        (["supply", "ship", "--key", "{key}", "--to", P, "--pack", "123:S1"], "GTIN '123' must be 14 digits"),
        (["supply", "dispense", "--key", "{key}", "--pack", f"{GTIN}:"], "serial '' must be 1..20 characters"),
        (["supply", "receive", "--key", "{key}", "--shipment", P], "list the shipment: --pack or --container"),
        (
            ["supply", "recall", "--key", "{key}", "--gtin", GTIN, "--lot", "L", "--serial", "S", "--reason", "r"],
            "give exactly one of --lot LOT and --serial SERIAL",
        ),
        (
            ["supply", "decommission", "--key", "{key}", "--pack", f"{GTIN}:S1", "--reason", "bored"],
            "'bored' is not one of",
        ),
        (["supply", "import-epcis", "{fhir}", "--key", "{key}"], "$.type: missing; expected EPCISDocument"),
        (
            ["supply", "import-epcis", "{fhir}", "--key", "{key}", "--party", "urn:epc:id:sgln:1=abc"],
            "expected NAME=HEX",
        ),
    ],
)
def test_bad_input_exits_2_before_asking_the_node(home: Path, files: Files, args: list[str], fragment: str) -> None:
    result = run(home, *(arg.format(**vars(files)) for arg in args))
    assert result.exit_code == 2 and fragment in result.output, result.output


# -- records, on a network of real nodes ------------------------------------------------------


@pytest.fixture(scope="module")
def net() -> Iterator[ProcessNetwork]:
    with tempfile.TemporaryDirectory(prefix="p2pmed-clr-") as directory:
        network = ProcessNetwork(Path(directory), 4, CONFIG)
        try:
            network.start_all(WAIT_S)
            yield network
        finally:
            network.close()


@dataclass(frozen=True)
class Person:
    id: str
    key: str
    encryption_key: str


def register(net: ProcessNetwork, role: str, name: str) -> Person:
    """A person the hospital registers, with key files as p2pmed identity keys writes them."""
    key, encryption = SigningKey.generate(), EncryptionPrivateKey.generate()
    site = load_home(net.homes[HOSPITAL_SITE])
    with RpcClient(site.socket_path) as rpc:
        submit(rpc, site.key, "identity.person.register", PersonRegister(key.public_key, role, encryption.public_key))
    save_signing_key(net.directory / f"{name}.pem", key)
    save_encryption_key(net.directory / f"{name}.enc", encryption)
    return Person(key.public_key.hex(), str(net.directory / f"{name}.pem"), str(net.directory / f"{name}.enc"))


def reads(net: ProcessNetwork, reader: Person, record_id: str, *args: str) -> Result:
    return run(
        net.homes[HOSPITAL_SITE],
        "record",
        "read",
        "--key",
        reader.key,
        "--encryption-key",
        reader.encryption_key,
        "--record",
        record_id,
        *args,
    )


def test_a_lab_result_is_written_read_refused_and_erased_through_the_cli(net: ProcessNetwork) -> None:
    patient, clinician = register(net, "patient", "patient"), register(net, "clinician", "clinician")
    resource = write_json(net.directory / "potassium.json", observation({"reference": "Patient/7"}))
    lab = net.homes[LAB_SITE]
    lab_key = load_home(lab).key.public_key.hex()
    ordered = run(  # the lab order: the patient puts the lab in their care for lab results
        *(lab, "consent", "grant", "--key", patient.key, "--grantee", lab_key, "--category", "laboratory"),
        *("--purpose", "TREAT", "--expires", "2099-12-31", "--wait"),
    )
    assert ordered.exit_code == 0, ordered.output
    written = run(
        lab,
        "record",
        "add",
        "--key",
        str(lab / "node_key.pem"),
        "--fhir",
        resource,
        "--ref",
        f"Patient/7={patient.id}",
        "--json",
    )
    assert written.exit_code == 0, written.output
    record_id = json.loads(written.output)["record_id"]
    content = import_resource(Path(resource).read_bytes(), "R5", {"Patient/7": bytes.fromhex(patient.id)}).content  # type: ignore[union-attr]

    read = reads(net, patient, record_id)
    assert read.exit_code == 0 and read.stdout_bytes == content, read.output
    out = net.directory / "copy.json"
    assert reads(net, patient, record_id, "--purpose", "PATRQT", "--out", str(out)).exit_code == 0
    assert out.read_bytes() == content and stat.S_IMODE(out.stat().st_mode) == 0o600

    refused = reads(net, clinician, record_id)
    assert refused.exit_code == 1 and refused.stdout_bytes == b""
    assert (
        "error: the ledger refused record.read (not-authorised): no consent in force lets this reader see laboratory "
        "records"
        " for TREAT"
    ) in refused.output
    shown = run(net.homes[HOSPITAL_SITE], "record", "show", "--record", record_id)
    assert f"record {record_id}  laboratory, in force" in shown.output and f"patient    {patient.id}" in shown.output

    erased = run(net.homes[HOSPITAL_SITE], "record", "erase", "--key", patient.key, "--record", record_id)
    assert erased.exit_code == 0 and f"record {record_id} erased at height" in erased.output, erased.output
    again = reads(net, patient, record_id)
    assert again.exit_code == 1
    assert (
        "the ledger refused record.read (not-authorised): the record was erased at the patient's request"
        in again.output
    )
    after = run(net.homes[HOSPITAL_SITE], "record", "show", "--record", record_id)
    assert "ERASED at" in after.output
    for result in (written, refused, shown, erased, again, after):
        assert b"potassium" not in result.stdout_bytes + result.stderr_bytes, "only record read shows the content"


def test_identity_lifecycle_through_the_cli_rotate_vote_and_revoke(net: ProcessNetwork) -> None:
    clinician = register(net, "clinician", "lifecycle")
    hospital = net.homes[HOSPITAL_SITE]
    new_key, new_encryption = SigningKey.generate(), EncryptionPrivateKey.generate()
    save_signing_key(net.directory / "lifecycle-2027.pem", new_key)
    rotated = run(
        *(hospital, "identity", "rotate", "--key", clinician.key, "--wait"),
        *("--new-key", str(net.directory / "lifecycle-2027.pem")),
        *("--encryption-key", new_encryption.public_key.key.hex()),
    )
    assert rotated.exit_code == 0, rotated.output
    shown = json.loads(run(hospital, "identity", "person", "--json", clinician.id).output)
    assert (shown["key"], shown["active"]) == (new_key.public_key.hex(), True)

    lab = net.homes[LAB_SITE]  # a validator that did not register the clinician: its vote alone changes nothing
    voted = run(
        lab, "identity", "revoke-person", "--key", str(lab / "node_key.pem"), "--person", clinician.id, "--wait"
    )
    assert voted.exit_code == 0, voted.output
    assert json.loads(run(hospital, "identity", "person", "--json", clinician.id).output)["active"] is True
    revoked = run(
        *(hospital, "identity", "revoke-person", "--key", str(hospital / "node_key.pem"), "--person", clinician.id),
        "--wait",
    )
    assert revoked.exit_code == 0, revoked.output
    assert "REVOKED" in run(hospital, "identity", "person", clinician.id).output

    org_vote = run(lab, "identity", "revoke-org", "--key", str(lab / "node_key.pem"), "--org", "ab" * 32, "--wait")
    assert org_vote.exit_code == 1 and "no organisation in force has this id" in org_vote.output


def test_a_patient_follows_their_notices_as_blocks_commit(net: ProcessNetwork) -> None:
    patient = register(net, "patient", "follower")
    hospital = net.homes[HOSPITAL_SITE]
    follower = subprocess.Popen(
        [sys.executable, "-m", "p2pmed", "notices", "--home", str(hospital), "--patient", patient.id, "--count", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(10):  # bounded: until the follower, once subscribed, has seen one
            granted = run(
                *(
                    hospital,
                    "consent",
                    "grant",
                    "--key",
                    patient.key,
                    "--grantee",
                    load_home(hospital).key.public_key.hex(),
                ),
                *("--category", "imaging", "--purpose", "TREAT", "--expires", "2099-12-31", "--wait"),
            )
            assert granted.exit_code == 0, granted.output
            try:
                out, err = follower.communicate(timeout=3)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            raise AssertionError("no notice arrived")
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    assert "consent-grant" in out and "imaging TREAT" in out


def test_a_break_glass_reason_is_sealed_and_opens_only_for_the_patient_and_the_organisation(
    net: ProcessNetwork,
) -> None:
    patient, clinician = register(net, "patient", "sealed-patient"), register(net, "clinician", "sealed-doctor")
    hospital = net.homes[HOSPITAL_SITE]
    resource = write_json(net.directory / "sealed.json", observation({"reference": "Patient/9"}))
    written = run(
        *(hospital, "record", "add", "--key", str(hospital / "node_key.pem"), "--fhir", resource),
        *("--ref", f"Patient/9={patient.id}", "--json"),
    )
    assert written.exit_code == 0, written.output
    record_id = json.loads(written.output)["record_id"]
    reason = "found unresponsive, checking potassium"
    broke = reads(net, clinician, record_id, "--purpose", "ETREAT", "--break-glass", reason)
    assert broke.exit_code == 0, broke.output
    trail = json.loads(run(hospital, "audit", "show", "--patient", patient.id, "--json").output)["entries"]
    [entry] = [entry for entry in trail if entry["kind"] == "break-glass"]
    assert reason not in json.dumps(trail) and entry["detail"].startswith("reason sha256 ")
    opened = run(hospital, "record", "reason", "--event", entry["tx_id"], "--encryption-key", patient.encryption_key)
    assert opened.exit_code == 0 and opened.output.strip() == reason, opened.output
    refused = run(hospital, "record", "reason", "--event", entry["tx_id"], "--encryption-key", clinician.encryption_key)
    assert refused.exit_code == 2 and "no sealed copy of the reason opens with this key" in refused.output
