"""Encrypted records across four real node processes (custodian keys ML-KEM-768 +
X25519): written at the lab, opened by no single custodian's keys, readable with
consent at the hospital after a custodian is killed, gone from every replica after
erasure, and never in plaintext in a ledger, a log or the metrics; a read without a
grant is refused by every custodian and shows in its site audit log."""

from __future__ import annotations

import json
import re
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from p2pmed import codec
from p2pmed.cli.main import cli
from p2pmed.client.records import LedgerRefused, read_record, submit, write_record
from p2pmed.crypto import CryptoError, EncryptionPrivateKey, Kem, SignatureDomain, SigningKey, decrypt_record
from p2pmed.key_shares import combine, unwrap_share
from p2pmed.ledger.contracts.consent import ConsentGrant
from p2pmed.ledger.contracts.identity import PersonRegister
from p2pmed.ledger.contracts.records import RecordErase
from p2pmed.net.blob_protocol import SHARES_SIZE_MAX, ReadRequest, SealedShares, SignedReadRequest
from p2pmed.rpc.client import RpcClient, RpcError
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import load_home
from p2pmed.store.blobs import BlobStore
from p2pmed.testing.process_network import ProcessNetwork

CONFIG = NodeConfig(log_format="json", log_level="debug", request_timeout_ms=1_500, view_change_timeout_ms=1_500)
MARKER = "PLANTED-MARKER-7f3a9c-potassium-critical"
HOSPITAL, LAB = 0, 1  # testnet kinds: hospital, laboratory, pharmacy, distributor
WAIT_S = 60.0


@pytest.fixture(scope="module")
def net() -> Iterator[ProcessNetwork]:
    with tempfile.TemporaryDirectory(prefix="p2pmed-rec-") as directory:
        network = ProcessNetwork(Path(directory), 4, CONFIG, metrics=True, kem=Kem.MLKEM768_X25519)
        try:
            network.start_all(WAIT_S)
            yield network
        finally:
            network.close()


def client(net: ProcessNetwork, index: int) -> RpcClient:
    return RpcClient(load_home(net.homes[index]).socket_path)


def site_key(net: ProcessNetwork, index: int) -> SigningKey:
    return load_home(net.homes[index]).key


def register(net: ProcessNetwork, role: str) -> tuple[SigningKey, EncryptionPrivateKey]:
    person, encryption = SigningKey.generate(), EncryptionPrivateKey.generate()
    with client(net, HOSPITAL) as rpc:
        submit(
            rpc,
            site_key(net, HOSPITAL),
            "identity.person.register",
            PersonRegister(person.public_key, role, encryption.public_key),
        )
    return person, encryption


def order_lab_work(net: ProcessNetwork, patient: SigningKey) -> None:
    """The patient puts the lab in their care for lab results (a lab order): its care relationship."""
    grant = ConsentGrant(
        patient.public_key, site_key(net, LAB).public_key, ("laboratory",), ("TREAT",), 4_102_444_800_000
    )
    with client(net, HOSPITAL) as rpc:  # where the registration is known to have committed
        submit(rpc, patient, "consent.grant", grant)


def test_a_record_is_read_with_consent_after_its_custodian_dies_and_erased_everywhere(net: ProcessNetwork) -> None:
    (patient, patient_encryption), (clinician, clinician_encryption) = (
        register(net, "patient"),
        register(net, "clinician"),
    )
    plaintext = f'{{"resourceType": "Observation", "note": "{MARKER}"}}'.encode()
    order_lab_work(net, patient)
    with client(net, LAB) as lab:
        written = write_record(lab, site_key(net, LAB), patient.public_key, "laboratory", plaintext)
        record_id = written.record_id
    assert (written.stored, written.failed) == (("node1", "node2", "node3"), {})
    for index in (1, 2, 3):
        assert_custodian_cannot_open(net, index, record_id)

    with client(net, HOSPITAL) as hospital:
        with pytest.raises(LedgerRefused, match="no consent in force"):
            read_record(hospital, clinician, clinician_encryption, record_id)
        submit(
            hospital,
            patient,
            "consent.grant",
            ConsentGrant(
                patient.public_key, site_key(net, HOSPITAL).public_key, ("laboratory",), ("TREAT",), 4_102_444_800_000
            ),
        )
        net.kill(LAB)  # the custodian that wrote it; nodes 2 and 3 hold the two shares left
        assert read_record(hospital, clinician, clinician_encryption, record_id) == plaintext
        assert read_record(hospital, patient, patient_encryption, record_id, purpose="PATRQT") == plaintext

    net.start(LAB)
    net.wait_ready(LAB, WAIT_S)
    with client(net, HOSPITAL) as hospital:
        submit(hospital, patient, "record.erase", RecordErase(record_id))
        with pytest.raises(LedgerRefused, match="erased"):
            read_record(hospital, clinician, clinician_encryption, record_id)
    for index in (LAB, 2, 3):  # the custodians: each shreds it once the erasure reaches it
        blobs = BlobStore(net.homes[index] / "data" / "blobs")
        net.wait_for(index, lambda blobs=blobs: record_id not in blobs.record_ids(), WAIT_S, "to erase the record")

    marker = MARKER.encode()
    for index in range(net.size):  # ledgers (SQLite and its WAL), blob stores, logs at debug level, metrics
        files = [path for path in (net.homes[index] / "data").rglob("*") if path.is_file()]
        assert files and net.log_path(index).stat().st_size > 0
        for path in [*files, net.log_path(index)]:
            assert marker not in path.read_bytes(), f"plaintext in {path}"
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{net.metrics_ports[index]}/metrics").read()
        assert metrics and marker not in metrics


def assert_custodian_cannot_open(net: ProcessNetwork, index: int, record_id: bytes) -> None:
    """Everything custodian ``index`` holds, tried with its own encryption key: its share opens,
    the others' do not, and no key it can make from what opens decrypts the ciphertext."""
    home = load_home(net.homes[index])
    held = BlobStore(net.homes[index] / "data" / "blobs").get(record_id)
    assert held is not None, f"node{index} does not hold the record"
    sealed, shares = held
    opened = {}
    for wrap in codec.decode(SealedShares, shares, SHARES_SIZE_MAX).wraps:
        try:
            number, share = unwrap_share(wrap, home.encryption_key, record_id)
        except CryptoError:
            continue
        opened[number] = share
    assert len(opened) == 1, f"node{index} opened {len(opened)} shares"
    (share,) = opened.values()
    for candidate in (share, combine(opened)):
        with pytest.raises(CryptoError):
            decrypt_record(record_id, sealed, candidate)


def test_a_custodian_refuses_a_ciphertext_that_does_not_match_its_anchor(net: ProcessNetwork) -> None:
    with client(net, 2) as rpc, pytest.raises(RpcError, match="no committed anchor"):
        rpc.call(
            "record.store",
            record_id="11" * 32,
            custodian=site_key(net, 3).public_key.hex(),
            sealed="00" * 40,
            shares=codec.encode(SealedShares(())).hex(),
        )


def test_a_custodian_down_at_write_time_fetches_its_copy_from_the_other_later(net: ProcessNetwork) -> None:
    patient, encryption = register(net, "patient")
    order_lab_work(net, patient)
    net.kill(2)  # the second custodian of what node 1 writes
    with client(net, LAB) as lab:
        written = write_record(lab, site_key(net, LAB), patient.public_key, "laboratory", b'{"note": "repair me"}')
    assert written.stored == ("node1", "node3") and "node2" in written.failed
    net.start(2)
    net.wait_ready(2, WAIT_S)
    blobs = BlobStore(net.homes[2] / "data" / "blobs")
    net.wait_for(2, lambda: written.record_id in blobs.record_ids(), WAIT_S, "to fetch its copy from another")
    net.kill(LAB)  # now the repaired share is one of the two reachable, and both are needed
    with client(net, HOSPITAL) as hospital:
        assert (
            read_record(hospital, patient, encryption, written.record_id, purpose="PATRQT") == b'{"note": "repair me"}'
        )
    net.start(LAB)
    net.wait_ready(LAB, WAIT_S)


def test_reads_without_a_grant_are_refused_and_in_each_custodians_site_audit_log(net: ProcessNetwork) -> None:
    patient, _ = register(net, "patient")
    snooper, _ = register(net, "clinician")
    order_lab_work(net, patient)
    with client(net, LAB) as lab:
        written = write_record(lab, site_key(net, LAB), patient.public_key, "laboratory", b'{"note": "audit me"}')
    chain_id = load_home(net.homes[HOSPITAL]).genesis.chain_id
    request = ReadRequest(written.record_id, snooper.public_key, int(time.time() * 1000))
    signed = SignedReadRequest(request, snooper.sign(SignatureDomain.RECORD_FETCH, chain_id, codec.encode(request)))
    with client(net, HOSPITAL) as hospital:
        with pytest.raises(RpcError, match="key shares needed"):  # no record.read on the ledger
            hospital.call("record.fetch", request=codec.encode(signed).hex())
        hospital.call("audit.query", by="patient", subject=patient.public_key.hex())

    runner = CliRunner()
    for moniker in written.stored:
        home = net.homes[int(moniker.removeprefix("node"))]
        shown = runner.invoke(cli, ["audit", "site", "--home", str(home), "--json"])
        assert shown.exit_code == 0, shown.output
        refusals = [
            entry["fields"]
            for entry in json.loads(shown.output)["entries"]
            if entry["kind"] == "custody-refused" and entry["fields"]["reader"] == snooper.public_key.hex()
        ]
        assert refusals and refusals[0]["requester"] == site_key(net, HOSPITAL).public_key.hex()
        assert refusals[0]["record_id"] == written.record_id.hex() and refusals[0]["signature_verified"] is True
        assert "no read of this record by this reader" in refusals[0]["reason"]

        bundle = json.loads(runner.invoke(cli, ["audit", "site", "--home", str(home), "--fhir"]).output)
        outcomes = {
            entry["resource"]["outcome"]["code"]["code"]
            for entry in bundle["entry"]
            if entry["resource"]["code"]["coding"][0]["code"] == "custody-refused"
        }
        assert outcomes == {"4"}
        verified = runner.invoke(cli, ["audit", "site-verify", "--home", str(home)])
        assert verified.exit_code == 0 and verified.output.startswith("verified"), verified.output
        index = int(moniker.removeprefix("node"))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{net.metrics_ports[index]}/metrics").read().decode()
        shares_refused = re.search(r'^p2pmed_custody_refusals_total\{kind="share"\} (\S+)$', metrics, re.MULTILINE)
        assert shares_refused is not None and float(shares_refused.group(1)) >= 1

    trail = runner.invoke(cli, ["audit", "site", "--home", str(net.homes[HOSPITAL]), "--json"])
    reads = [entry["fields"] for entry in json.loads(trail.output)["entries"] if entry["kind"] == "trail-read"]
    assert {"patient": patient.public_key.hex(), "format": "entries"}.items() <= reads[-1].items()
