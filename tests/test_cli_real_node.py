"""The healthcare CLI on one network of four real ``p2pmed node`` processes, driven only
through the ``p2pmed`` command (click's runner, in this process, over each node's real
RPC socket): every healthcare command group at least once, and each
access-control attack of issue #16 refused, asserting the reason the CLI prints.

The organisations and people are made with the CLI too: ``identity keys`` makes their
keys, three of the four validators (2f+1) vote organisations in with ``identity
propose-org``, and organisations register their staff with ``identity
register-person``. The testnet's sites are a hospital, a laboratory, a pharmacy and a
distributor (``TESTNET_KINDS``); a sponsor, a manufacturer and a clinic are voted in
here. The custody attacks of the issue (a validator fetching a ciphertext without a
grant, overwriting a key wrap) are the custodians' tests, not this module's.

One network serves the module; each test makes its own people, so no test depends on
another's. Commands go to the hospital's node unless a test shows another node's view:
a signer's next nonce comes from the node it asks, and ``--wait`` waits for that node's
block. Every wait is bounded; nothing asserts on timing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fhir.resources.auditevent import AuditEvent
from fhir.resources.consent import Consent

from p2pmed.cli.main import cli
from p2pmed.ledger.contracts import supply
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import ENCRYPTION_KEY, NODE_KEY, load_home
from p2pmed.testing.process_network import ProcessNetwork

pytestmark = pytest.mark.xdist_group("cli-real-network")  # one worker, one network (--dist loadgroup)

CONFIG = NodeConfig(request_timeout_ms=1_500, view_change_timeout_ms=1_500)
WAIT_S = 60.0
HOSPITAL, LAB, PHARMACY, DISTRIBUTOR = range(4)  # create_testnet's site kinds, in turn
VOTERS = (HOSPITAL, LAB, PHARMACY)  # 2f+1 of the four validators
FAR = "2099-12-31"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
GTIN = "0950110153100" + supply.gs1_check_digit("0950110153100")


@dataclass(frozen=True)
class Party:
    """A person (``id``: their person id) or an organisation (``id``: its key), with the key
    files the CLI signs and decrypts with."""

    id: str
    key: str
    encryption_key: str


def reason(result: Result) -> str:
    """The reason the CLI printed for a refusal: its one ``error:`` line, with exit code 1."""
    assert result.exit_code == 1, f"not refused: {result.output}"
    [line] = result.stderr.splitlines()
    assert line.startswith("error: "), result.stderr
    return line.removeprefix("error: ")


class Network:
    """The module's process network, seen only through the ``p2pmed`` command."""

    def __init__(self, net: ProcessNetwork) -> None:
        self.net = net
        self.directory = net.directory

    def run(self, *args: str, node: int = HOSPITAL) -> Result:
        """``p2pmed ARGS --home HOME`` of node ``node``."""
        return CliRunner().invoke(cli, [*args, "--home", str(self.net.homes[node])])

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, f"p2pmed {' '.join(args)}: {result.output}"
        return result.stdout

    def refused(self, *args: str) -> str:
        """The reason the CLI prints for refusing ``p2pmed ARGS``."""
        return reason(self.run(*args))

    def site(self, index: int) -> Party:
        home = self.net.homes[index]
        return Party(load_home(home).key.public_key.hex(), str(home / NODE_KEY), str(home / ENCRYPTION_KEY))

    def keys(self, name: str) -> tuple[Party, str]:
        """``identity keys`` for ``name``: the party and its public encryption key (hex)."""
        made = CliRunner().invoke(cli, ["identity", "keys", "--out", str(self.directory / name), "--json"])
        assert made.exit_code == 0, made.output
        keys = json.loads(made.stdout)
        party = Party(keys["public_key"], keys["signing_key_file"], keys["encryption_key_file"])
        return party, keys["encryption_key"]

    def register_args(self, registrar: Party, role: str, name: str) -> tuple[Party, list[str]]:
        person, encryption_key = self.keys(name)
        args = ["identity", "register-person", "--key", registrar.key, "--role", role, "--wait"]
        return person, [*args, "--public-key", person.id, "--encryption-key", encryption_key]

    def register(self, registrar: Party, role: str, name: str) -> Party:
        person, args = self.register_args(registrar, role, name)
        self.ok(*args)
        return person

    def admit(self, name: str, kind: str) -> Party:
        """An organisation the validators vote in: in force at the 2f+1-th vote, not before."""
        organisation, encryption_key = self.keys(name)
        for number, voter in enumerate(VOTERS, start=1):
            if number == len(VOTERS):
                absent = self.refused("identity", "org", organisation.id)
                assert absent == f"no organisation has id or current key {organisation.id}"
            self.ok(
                *("identity", "propose-org", "--key", self.site(voter).key, "--org-key", organisation.id),
                *("--name", name, "--kind", kind, "--encryption-key", encryption_key, "--wait"),
            )
        assert f"{name} ({kind}), in force since height" in self.ok("identity", "org", organisation.id)
        return organisation

    def file(self, name: str, content: bytes) -> str:
        path = self.directory / name
        path.write_bytes(content)
        return str(path)

    def write(self, writer: Party, patient: Party, category: str, content: bytes) -> Result:
        path = self.file(f"{patient.id[:8]}-{category}-{len(content)}.txt", content)
        return self.run(
            *("record", "add", "--key", writer.key, "--patient", patient.id),
            *("--category", category, "--file", path, "--json"),
        )

    def record(self, writer: Party, patient: Party, category: str, content: bytes) -> str:
        """The id of a record ``writer`` writes, which the ledger accepted."""
        written = self.write(writer, patient, category, content)
        assert written.exit_code == 0, written.output
        return str(json.loads(written.stdout)["record_id"])

    def read(self, reader: Party, record_id: str, purpose: str, *args: str) -> bytes:
        """The content ``reader`` reads, having stated ``purpose``."""
        result = self.run(*self._read_args(reader, record_id, purpose, *args))
        assert result.exit_code == 0, result.output
        return result.stdout_bytes

    def read_refused(self, reader: Party, record_id: str, purpose: str, *args: str) -> str:
        """Why ``reader`` may not read: the reason the CLI prints; nothing else is printed."""
        result = self.run(*self._read_args(reader, record_id, purpose, *args))
        assert (result.exit_code, result.stdout) == (1, ""), result.output
        return reason(result)

    def _read_args(self, reader: Party, record_id: str, purpose: str, *args: str) -> list[str]:
        return [
            *("record", "read", "--key", reader.key, "--encryption-key", reader.encryption_key),
            *("--record", record_id, "--purpose", purpose, *args),
        ]

    def grant(self, signer: Party, patient: Party, grantee: Party, category: str, purpose: str) -> list[str]:
        """The arguments of a ``consent grant`` (with ``--wait``), to run or to see refused."""
        return [
            *("consent", "grant", "--key", signer.key, "--patient", patient.id, "--grantee", grantee.id),
            *("--category", category, "--purpose", purpose, "--expires", FAR, "--wait"),
        ]

    def consents(self, patient: Party) -> list[tuple[str, str, str, str]]:
        """(grantee, category, purpose, granted by) of each consent in force, as ``consent show`` lists them."""
        shown = json.loads(self.ok("consent", "show", patient.id, "--json"))
        return [(c["grantee"], c["category"], c["purpose"], c["granted_by"]) for c in shown["consents"]]

    def trail(self, patient: Party) -> list[dict[str, Any]]:
        return list(json.loads(self.ok("audit", "show", "--patient", patient.id, "--json"))["entries"])


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    directory = Path(tempfile.mkdtemp(prefix="p2pmed-"))  # short: the RPC socket path must fit in 108 bytes
    net = ProcessNetwork(directory, 4, CONFIG)
    try:
        net.start_all(WAIT_S)
        yield Network(net)
    finally:
        net.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def sponsor(network: Network) -> Party:
    return network.admit("Acme Trials", "sponsor")


@pytest.fixture(scope="module")
def researcher(network: Network, sponsor: Party) -> Party:
    return network.register(sponsor, "researcher", "researcher")


def not_authorised(tx_type: str, detail: str) -> str:
    """What the CLI prints when the ledger refuses a ``tx_type`` it does not allow."""
    return f"the ledger refused {tx_type} (not-authorised): {detail}"


# -- the attacks of issue #16, each refused through the CLI -----------------------------------


def test_a_distributor_cannot_register_a_clinician_nor_a_lab_clinician_break_the_glass(network: Network) -> None:
    would_be, args = network.register_args(network.site(DISTRIBUTOR), "clinician", "would-be-clinician")
    result = network.run(*args, "--json")
    assert reason(result) == not_authorised(
        "identity.person.register",
        "a distributor may not register a clinician; clinicians are registered by: clinic, hospital, laboratory",
    )
    tx_id = json.loads(result.stdout)["tx_id"]
    on_another_node = network.net.wait_for(  # in a block there too, not just gossiped to its mempool
        PHARMACY,
        lambda: " rejected at " in (shown := network.run("tx", "get", tx_id, node=PHARMACY).stdout) and shown,
        WAIT_S,
        "to have the refused registration in a block",
    )
    assert f"{tx_id} rejected at height" in on_another_node
    assert "reason not-authorised: a distributor may not register a clinician" in on_another_node
    assert network.refused("identity", "person", would_be.id) == f"no person has id or current key {would_be.id}"

    hospital = network.site(HOSPITAL)  # a laboratory registers clinicians, but they do not break the glass
    lab_clinician = network.register(network.site(LAB), "clinician", "lab-clinician")
    patient = network.register(hospital, "patient", "glass-patient")
    record_id = network.record(hospital, patient, "imaging", b"CT head: no bleed")
    detail = "only clinicians of care providers (clinic, hospital) may break the glass"
    assert network.read_refused(lab_clinician, record_id, "ETREAT", "--break-glass", "collapsed") == not_authorised(
        "record.read", detail
    )
    [refusal] = [entry for entry in network.trail(patient) if entry["kind"] == "record-read-refused"]
    assert (refusal["actor"], refusal["detail"]) == (lab_clinician.id, f"break-glass: {detail}")


def test_records_are_written_only_by_the_table_and_within_a_care_relationship(
    network: Network, researcher: Party
) -> None:
    patient = network.register(network.site(HOSPITAL), "patient", "writes-patient")
    lab, distributor = network.site(LAB), network.site(DISTRIBUTOR)
    no_care = (
        "no care relationship: the patient is not registered at the writer's organisation and gave it no consent"
        " in force for laboratory"
    )
    for writer, category, detail in (
        (lab, "laboratory", no_care),
        (lab, "mental-health", "a laboratory may not write mental-health records"),
        (researcher, "laboratory", "a researcher may not write laboratory records"),
        (distributor, "laboratory", "a distributor may not write laboratory records"),
    ):
        assert reason(network.write(writer, patient, category, b"K 6.1 mmol/L")) == not_authorised("record.add", detail)

    network.ok(*network.grant(patient, patient, lab, "laboratory", "TREAT"))  # the lab order: now in its care
    by_lab = network.record(lab, patient, "laboratory", b"K 6.1 mmol/L")
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "heart rate"},
        "subject": {"reference": "Patient/1"},
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs"}]}],
        "valueQuantity": {"value": 72, "unit": "/min"},
    }
    observation, ref = network.file("observation.json", json.dumps(resource).encode()), f"Patient/1={patient.id}"
    checked = CliRunner().invoke(cli, ["fhir", "import-check", observation, "--ref", ref])
    assert checked.exit_code == 0, checked.output
    assert f"Observation: valid; a vital-signs record of patient {patient.id}" in checked.stdout
    hospital = network.site(HOSPITAL)  # the patient is registered there: in its care
    added = network.ok("record", "add", "--key", hospital.key, "--fhir", observation, "--ref", ref, "--json")
    by_hospital = json.loads(added)["record_id"]
    assert f"written by {lab.id}" in network.ok("record", "show", "--record", by_lab)
    assert [(entry["kind"], entry["record_id"]) for entry in network.trail(patient)] == [
        ("consent-grant", ""),
        ("record-write", by_lab),
        ("record-write", by_hospital),
    ]


def test_a_researcher_reads_only_for_research_and_a_second_purpose_adds_to_the_first(
    network: Network, researcher: Party
) -> None:
    patient = network.register(network.site(HOSPITAL), "patient", "research-patient")
    record_id = network.record(network.site(HOSPITAL), patient, "laboratory", b"HbA1c 48 mmol/mol")
    network.ok(*network.grant(patient, patient, researcher, "laboratory", "TREAT"))  # even with consent for it
    assert network.read_refused(researcher, record_id, "TREAT") == not_authorised(
        "record.read", "a researcher may not read for TREAT (allowed: CLINTRL, HRESCH)"
    )

    network.ok(*network.grant(patient, patient, researcher, "laboratory", "HRESCH"))
    network.ok(*network.grant(patient, patient, researcher, "laboratory", "CLINTRL"))
    assert network.consents(patient) == [
        (researcher.id, "laboratory", purpose, patient.id) for purpose in ("CLINTRL", "HRESCH", "TREAT")
    ]  # one consent per purpose: the later grants replaced none
    bundle = json.loads(network.ok("consent", "show", patient.id, "--fhir"))
    assert len([Consent.model_validate(entry["resource"]) for entry in bundle["entry"]]) == 3
    assert network.read(researcher, record_id, "HRESCH") == b"HbA1c 48 mmol/mol"
    assert network.read(researcher, record_id, "CLINTRL") == b"HbA1c 48 mmol/mol"

    network.ok(
        *("consent", "revoke", "--key", patient.key, "--grantee", researcher.id, "--category", "laboratory", "--wait")
    )
    assert network.consents(patient) == []  # a revoke ends every purpose of its categories
    assert network.read_refused(researcher, record_id, "HRESCH") == not_authorised(
        "record.read", "no consent in force lets this reader see laboratory records for HRESCH"
    )


def test_a_refused_read_is_on_the_patients_audit_trail_and_in_their_notices(network: Network) -> None:
    hospital = network.site(HOSPITAL)
    patient = network.register(hospital, "patient", "audited-patient")
    stranger = network.register(hospital, "clinician", "stranger")
    record_id = network.record(hospital, patient, "mental-health", b"assessment notes")
    notices = ["notices", "--home", str(network.net.homes[LAB]), "--patient", patient.id, "--count", "1", "--json"]
    follower = subprocess.Popen(  # a process of its own: it waits on its subscription while this one writes
        [sys.executable, "-m", "p2pmed", *notices],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(10):  # bounded: until the follower, once subscribed, has seen a refused read
            assert network.read_refused(stranger, record_id, "TREAT") == not_authorised(
                "record.read", "no consent in force lets this reader see mental-health records for TREAT"
            )
            try:
                out, err = follower.communicate(timeout=2)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            raise AssertionError("no notice of the refused read arrived")
    finally:
        follower.kill()
        follower.wait()
    assert follower.returncode == 0, err
    notice = json.loads(out)
    assert (notice["kind"], notice["actor"], notice["record_id"]) == ("record-read-refused", stranger.id, record_id)

    trail = network.ok("audit", "show", "--patient", patient.id)
    [marked, *_] = [line for line in trail.splitlines() if line.startswith("!")]
    assert "record-read-refused by" in marked
    assert marked.endswith(
        "mental-health TREAT no consent in force lets this reader see mental-health records for TREAT"
    )
    events = json.loads(network.ok("audit", "show", "--actor", stranger.id, "--fhir"))["entry"]
    outcomes = {AuditEvent.model_validate(event["resource"]).outcome.code.code for event in events}
    assert outcomes == {"4"}  # minor failure: the request was refused


def test_a_revoked_organisations_clinician_no_longer_reads_or_breaks_the_glass(network: Network) -> None:
    hospital = network.site(HOSPITAL)
    clinic = network.admit("Riverside Clinic", "clinic")
    clinician = network.register(clinic, "clinician", "clinic-clinician")
    patient = network.register(hospital, "patient", "clinic-patient")
    labs = network.record(hospital, patient, "laboratory", b"creatinine 90 umol/L")
    scan = network.record(hospital, patient, "imaging", b"chest X-ray: clear")
    network.ok(*network.grant(patient, patient, clinic, "laboratory", "TREAT"))  # covers the clinic's clinicians
    assert network.consents(patient) == [(clinic.id, "laboratory", "TREAT", patient.id)]
    assert network.read(clinician, labs, "TREAT") == b"creatinine 90 umol/L"
    emergency = ("--break-glass", "unconscious on arrival")
    assert network.read(clinician, scan, "ETREAT", *emergency) == b"chest X-ray: clear"
    [event] = [entry["tx_id"] for entry in network.trail(patient) if entry["kind"] == "break-glass"]
    reviewed = network.ok("record", "review", "--key", clinic.key, "--event", event, "--finding", "justified")
    assert f"break-glass read {event} reviewed justified at height" in reviewed

    for voter in VOTERS:
        network.ok("identity", "revoke-org", "--key", network.site(voter).key, "--org", clinic.id, "--wait")
    assert "REVOKED (admitted at height" in network.ok("identity", "org", clinic.id)
    assert f"person {clinician.id}  clinician, REVOKED" in network.ok("identity", "person", clinician.id)
    assert network.read_refused(clinician, labs, "TREAT") == (
        f"unknown-sender: sender {clinician.id[:16]} is not a validator, nor an organisation, person or device in force"
    )
    assert network.read_refused(clinician, scan, "ETREAT", *emergency) == (
        f"unknown-sender: sender {clinician.id[:16]} is not a validator, nor an organisation, person or device in force"
    )
    assert network.refused("identity", "revoke-person", "--key", clinic.key, "--person", clinician.id) == (
        "the node refused identity.person.revoke: unknown-sender: sender "
        f"{clinic.id[:16]} is not a validator, nor an organisation, person or device in force [unknown-sender]"
    )
    assert network.consents(patient) == []  # the consent to the clinic covers nobody now


def test_a_delegate_grants_only_within_its_delegation_and_its_grants_lapse_with_it(network: Network) -> None:
    hospital, lab, distributor = network.site(HOSPITAL), network.site(LAB), network.site(DISTRIBUTOR)
    patient = network.register(hospital, "patient", "delegating-patient")
    clinician = network.register(hospital, "clinician", "delegates-clinician")
    record_id = network.record(hospital, patient, "laboratory", b"INR 2.4")
    network.ok(
        *("consent", "delegate", "--key", patient.key, "--delegate", lab.id, "--expires", "2099-06-30"),
        *("--category", "laboratory", "--purpose", "TREAT", "--wait"),
    )

    def by_lab(grantee: Party, category: str, purpose: str, expires: str = "2099-06-01") -> list[str]:
        """A grant the lab signs for the patient; the last --expires is the one that counts."""
        return [*network.grant(lab, patient, grantee, category, purpose), "--expires", expires]

    for args, detail in (
        (by_lab(clinician, "imaging", "TREAT"), "the delegation does not cover the category imaging"),
        (by_lab(clinician, "laboratory", "HPAYMT"), "the delegation does not cover the purpose HPAYMT"),
        (by_lab(lab, "laboratory", "TREAT"), "a delegate may not grant consent to itself"),
        (by_lab(clinician, "laboratory", "TREAT", FAR), "a delegate's grant may not outlive its delegation"),
        (
            network.grant(distributor, patient, clinician, "laboratory", "TREAT"),
            "only the patient or a delegate they named changes their consent",
        ),
    ):
        assert network.refused(*args) == not_authorised("consent.grant", detail)
    network.ok(*by_lab(clinician, "laboratory", "TREAT"))
    shown = network.ok("consent", "show", patient.id)
    assert f"laboratory    to {clinician.id} for TREAT until 2099-06-02T00:00:00Z (granted by {lab.id[:16]}…)" in shown
    assert f"delegate {lab.id} until 2099-07-01T00:00:00Z" in shown
    assert network.read(clinician, record_id, "TREAT") == b"INR 2.4"

    network.ok("consent", "undelegate", "--key", patient.key, "--delegate", lab.id, "--wait")
    assert network.consents(patient) == []  # what the delegate granted lapsed with its delegation
    assert network.read_refused(clinician, record_id, "TREAT") == not_authorised(
        "record.read", "no consent in force lets this reader see laboratory records for TREAT"
    )
    assert network.refused(*by_lab(clinician, "laboratory", "TREAT")) == not_authorised(
        "consent.grant", "only the patient or a delegate they named changes their consent"
    )


def test_the_validators_revoke_any_person_by_a_2f_plus_1_vote(network: Network) -> None:
    hospital = network.site(HOSPITAL)
    patient = network.register(hospital, "patient", "vote-patient")
    clinician = network.register(hospital, "clinician", "voted-out")
    record_id = network.record(hospital, patient, "vital-signs", b"BP 120/80")
    network.ok(*network.grant(patient, patient, clinician, "vital-signs", "TREAT"))
    assert network.read(clinician, record_id, "TREAT") == b"BP 120/80"
    others = (LAB, PHARMACY, DISTRIBUTOR)  # none of them registered the clinician
    for number, voter in enumerate(others, start=1):
        network.ok("identity", "revoke-person", "--key", network.site(voter).key, "--person", clinician.id, "--wait")
        state = "REVOKED" if number == len(others) else "in force"
        assert f"clinician, {state}" in network.ok("identity", "person", clinician.id)
    assert network.read_refused(clinician, record_id, "TREAT") == (
        f"unknown-sender: sender {clinician.id[:16]} is not a validator, nor an organisation, person or device in force"
    )


# -- the other command groups on the same network ---------------------------------------------


def test_a_trial_from_registration_to_results_flagged_for_outcome_switching(
    network: Network, sponsor: Party, researcher: Party
) -> None:
    patient = network.register(network.site(HOSPITAL), "patient", "trial-patient")
    protocol = network.file("protocol.txt", b"randomised, double blind; primary: HbA1c at 12 weeks")
    registration = ("NCT04000001", "--protocol", protocol, "--primary", "HbA1c at 12 weeks", "--secondary", "weight")
    assert network.refused(
        "trial", "register", *registration, "--key", network.site(DISTRIBUTOR).key, "--wait"
    ) == not_authorised("trial.register", "only an organisation in force of kind hospital or sponsor registers trials")
    network.ok("trial", "register", *registration, "--key", sponsor.key, "--wait")
    network.ok("trial", "consent", "NCT04000001", "--key", patient.key, "--wait")
    network.ok("trial", "enroll", "NCT04000001", "--person", patient.id, "--key", researcher.key, "--wait")
    dataset = network.file("results.csv", b"arm,weight\nA,-2.1\nB,-0.4\n")
    network.ok(
        *("trial", "results", "NCT04000001", "--dataset", dataset, "--primary", "weight", "--key", sponsor.key),
        "--wait",
    )
    shown = network.ok("trial", "show", "NCT04000001")
    assert "trial NCT04000001  closed (results anchored)  FLAGGED: outcome switching" in shown
    assert "enrolled 1 (withdrawn 0)" in shown
    assert " is result 1 of trial NCT04000001" in network.ok("trial", "verify", "NCT04000001", "--dataset", dataset)
    assert network.ok("trial", "flagged").startswith(f"NCT04000001 (sponsor {sponsor.id[:16]}…)")


def test_a_drug_pack_from_commissioning_through_a_distributor_to_dispensing(network: Network) -> None:
    maker = network.admit("Pharmaco", "manufacturer")
    for voter in VOTERS:
        grant = ("supply", "prefix", "grant", "--org", maker.id, "--prefix", "9501101")
        network.ok(*grant, "--key", network.site(voter).key, "--wait")
    assert network.ok("supply", "prefix", "show", GTIN).startswith("9501101: ")
    distributor, pharmacy = network.site(DISTRIBUTOR), network.site(PHARMACY)
    packs = ("--pack", f"{GTIN}:S1", "--pack", f"{GTIN}:S2")

    def ship(sender: Party, destination: Party) -> None:
        shipped = json.loads(
            network.ok("supply", "ship", "--to", destination.id, *packs, "--key", sender.key, "--wait", "--json")
        )
        network.ok("supply", "receive", "--shipment", shipped["tx_id"], *packs, "--key", destination.key, "--wait")

    network.ok(
        *("supply", "commission", "--gtin", GTIN, "--lot", "L1", "--expiry", FAR, "--serial", "S1", "--serial", "S2"),
        *("--key", maker.key, "--wait"),
    )
    ship(maker, distributor)
    assert network.refused("supply", "dispense", "--pack", f"{GTIN}:S1", "--key", distributor.key, "--wait") == (
        not_authorised("supply.dispense", "only a hospital or pharmacy dispenses packs; the sender is a distributor")
    )
    ship(distributor, pharmacy)
    network.ok("supply", "dispense", "--pack", f"{GTIN}:S1", "--key", pharmacy.key, "--wait")
    assert network.refused("supply", "dispense", "--pack", f"{GTIN}:S1", "--key", pharmacy.key, "--wait") == (
        f"the ledger refused supply.dispense (duplicate): pack (01){GTIN}(21)S1 was already dispensed: nobody can"
        " dispense it now"
    )
    trace = json.loads(network.ok("supply", "trace", GTIN, "S1", "--json"))
    assert [event["kind"] for event in trace["events"]] == [
        "commission",
        "ship",
        "receive",
        "ship",
        "receive",
        "dispense",
    ]
    dispensed = network.run("supply", "verify", GTIN, "S1")
    assert dispensed.exit_code == 1 and dispensed.stdout.startswith("DO NOT DISPENSE: already-dispensed")
    assert network.ok("supply", "verify", GTIN, "S2").startswith("OK: genuine-dispensable")
    network.ok(
        "supply", "scan", f"{GTIN}:FAKE1", "--lot", "L1", "--expiry", "2031-12-31", "--key", pharmacy.key, "--wait"
    )
    alerts = json.loads(network.ok("supply", "alerts", "--json"))["alerts"]
    assert [(alert["kind"], alert["serial"]) for alert in alerts] == [
        ("dispense-refused", "S1"),  # the second dispense of S1: a clone at the counter
        ("unknown-suspect-counterfeit", "FAKE1"),
    ]
