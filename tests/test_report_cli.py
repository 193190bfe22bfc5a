"""``p2pmed report`` on four real node processes, driven through the CLI: a patient's reads,
break-glass read, refusal and consent changes come out as a bundle, HTML and PDF; with every
node stopped, ``p2pmed report verify`` checks the bundle from genesis.json alone and refuses
each kind of tampering, naming what failed."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from p2pmed import codec
from p2pmed.cli.main import cli
from p2pmed.consensus.messages import CommitCertificate
from p2pmed.crypto import SigningKey
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import GENESIS, NODE_KEY, load_home
from p2pmed.testing.process_network import ProcessNetwork

pytestmark = pytest.mark.xdist_group("report-real-network")

CONFIG = NodeConfig(  # empty blocks each second: the last entry is soon in a certified state
    request_timeout_ms=1_500, view_change_timeout_ms=1_500, heartbeat_interval_ms=1_000
)
WAIT_S = 60.0
HOSPITAL = 0
KINDS = ["record-write", "consent-grant", "record-read", "break-glass", "record-read-refused"]


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def ok(*args: str) -> str:
    result = run(*args)
    assert result.exit_code == 0, f"p2pmed {' '.join(args)}: {result.output}"
    return result.stdout


class Scene:
    """A patient's care at the hospital, through the CLI; the bundle made at the end."""

    def __init__(self, net: ProcessNetwork) -> None:
        self.net, self.home = net, str(net.homes[HOSPITAL])
        self.hospital_key = str(net.homes[HOSPITAL] / NODE_KEY)

    def person(self, role: str, name: str) -> tuple[str, str, str]:
        keys = json.loads(ok("identity", "keys", "--out", str(self.net.directory / name), "--json"))
        ok(
            *("identity", "register-person", "--key", self.hospital_key, "--role", role, "--wait"),
            *("--public-key", keys["public_key"], "--encryption-key", keys["encryption_key"], "--home", self.home),
        )
        return keys["public_key"], keys["signing_key_file"], keys["encryption_key_file"]

    def read(self, reader: tuple[str, str, str], record_id: str, *args: str) -> Result:
        return run(
            *("record", "read", "--key", reader[1], "--encryption-key", reader[2], "--record", record_id),
            *("--purpose", "TREAT", *args, "--home", self.home),
        )

    def play(self) -> str:
        patient = self.person("patient", "patient")
        doctor, emergency, stranger = (self.person("clinician", name) for name in ("doctor", "emergency", "stranger"))
        path = self.net.directory / "note.txt"
        path.write_bytes(b"K 6.1 mmol/L")
        added = ok(
            *("record", "add", "--key", self.hospital_key, "--patient", patient[0], "--category", "laboratory"),
            *("--file", str(path), "--json", "--home", self.home),
        )
        record_id = json.loads(added)["record_id"]
        ok(
            *("consent", "grant", "--key", patient[1], "--patient", patient[0], "--grantee", doctor[0]),
            *("--category", "laboratory", "--purpose", "TREAT", "--expires", "2099-12-31", "--wait"),
            *("--home", self.home),
        )
        assert self.read(doctor, record_id).exit_code == 0
        assert self.read(emergency, record_id, "--break-glass", "unconscious in A&E").exit_code == 0
        assert self.read(stranger, record_id).exit_code == 1
        return patient[0]


def report(scene: Scene, patient: str, out: Path) -> dict[str, Any]:
    return json.loads(ok("report", "--home", scene.home, "--patient", patient, "--out", str(out), "--json"))


@pytest.fixture(scope="module")
def made() -> Iterator[tuple[Path, dict[str, Any]]]:
    directory = Path(tempfile.mkdtemp(prefix="p2pmed-"))  # short: the RPC socket path must fit in 108 bytes
    net = ProcessNetwork(directory, 4, CONFIG)
    try:
        net.start_all(WAIT_S)
        scene = Scene(net)
        patient = scene.play()
        out = directory / "report"
        summary = net.wait_for(  # until a certified block commits to the state after the last read
            HOSPITAL,
            lambda: (found := report(scene, patient, out))["count"] == len(KINDS) and found,
            WAIT_S,
            "to certify the state holding the patient's whole trail",
        )
        summary["node_block_hash"] = net.call(HOSPITAL, "chain.block", height=summary["anchor_height"])["hash"]
        site = load_home(net.homes[HOSPITAL]).key.public_key.hex()
        summary["site"] = json.loads(
            ok("report", "--home", scene.home, "--site", site, "--out", str(out.parent / "site"), "--no-pdf", "--json")
        )
        network = ("report", "--home", scene.home, "--network", "--out", str(out.parent / "network"), "--no-pdf")
        summary["network"] = json.loads(ok(*network, "--json"))
    finally:
        net.close()  # every node stopped: what follows is offline
    yield out, summary
    shutil.rmtree(directory, ignore_errors=True)


def genesis_of(out: Path) -> str:
    return str(out.parent / "node0" / GENESIS)


def verify(out: Path, bundle: Path, genesis: str | None = None) -> Result:
    return run("report", "verify", str(bundle), "--genesis", genesis or genesis_of(out), "--json")


def test_the_report_lists_disclosures_consents_and_refusals_in_html_and_pdf(
    made: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = made
    assert (summary["entries"], summary["complete"], summary["anchor_epoch"]) == (len(KINDS), True, 0)
    assert summary["anchor_block_hash"] == summary["node_block_hash"]  # what a site shows for that height
    kinds = [entry["kind"] for entry in json.loads((out / "bundle.json").read_text())["entries"]]
    assert kinds == KINDS
    page = (out / "report.html").read_text()
    for text in ("Accounting of disclosures", "EMERGENCY", "Refusals", "Consent history", "Complete: the ledger holds"):
        assert text in page, text
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    site = summary["site"]  # the hospital wrote the record: an entry of its own trail, as actor
    assert (site["by"], site["entries"], site["complete"], site["activity"]) == ("site", 1, True, 0)
    assert not (out.parent / "site" / "report.pdf").exists()
    network = summary["network"]  # one patient on this network so far
    assert (network["by"], network["entries"], network["complete"]) == ("network", len(KINDS), True)


def test_the_bundle_verifies_offline_from_genesis_alone(made: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = made
    copied = tmp_path / "bundle.json"
    shutil.copy(out / "bundle.json", copied)
    result = verify(out, copied)
    assert result.exit_code == 0, result.output
    checked = json.loads(result.stdout)
    assert (checked["verified"], checked["entries"], checked["count"]) == (True, len(KINDS), len(KINDS))
    html, pdf = tmp_path / "again.html", tmp_path / "again.pdf"
    again = run("report", "verify", str(copied), "--genesis", genesis_of(out), "--html", str(html), "--pdf", str(pdf))
    assert again.exit_code == 0 and "Accounting of disclosures" in html.read_text() and pdf.stat().st_size > 1000


def _flip(text: str, from_end: int) -> str:
    data = bytearray.fromhex(text)
    data[len(data) - from_end] ^= 0x01
    return data.hex()


def _entry_field(document: dict[str, Any]) -> None:
    [read] = [entry for entry in document["entries"] if entry["kind"] == "break-glass"]
    read["detail"] = "routine check"


def _proof_byte(document: dict[str, Any]) -> None:
    document["entries"][0]["path"] = _flip(document["entries"][0]["path"], 2)


def _signature(document: dict[str, Any]) -> None:
    document["anchor"]["certificate"] = _flip(document["anchor"]["certificate"], 3)


def _dropped(document: dict[str, Any]) -> None:
    document["entries"] = [entry for entry in document["entries"] if entry["kind"] != "record-read-refused"]


TAMPERINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "an entry's field": (_entry_field, r"entries\[\d\]\.detail: the bundle says 'routine check'"),
    "a proof byte": (_proof_byte, r"entries\[0\]"),
    "a certificate signature": (_signature, r"anchor: certificate of block \d+: bad commit signature"),
    "a dropped entry": (_dropped, r"claims the whole trail, but carries 4 of the 5 entries"),
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_a_tampered_bundle_is_refused_offline_naming_what_failed(
    made: tuple[Path, dict[str, Any]], tmp_path: Path, tampering: str
) -> None:
    out, _ = made
    change, named = TAMPERINGS[tampering]
    document = json.loads((out / "bundle.json").read_text())
    change(document)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(document))
    result = verify(out, tampered)
    assert result.exit_code == 1 and result.stdout == "", result.output
    assert result.stderr.startswith(f"error: {tampered}: refused: ")
    assert re.search(named, result.stderr), result.stderr


def test_a_swapped_validator_set_is_refused(made: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = made
    genesis = json.loads(Path(genesis_of(out)).read_text())
    certificate = json.loads((out / "bundle.json").read_text())["anchor"]["certificate"]
    signer = codec.decode(CommitCertificate, bytes.fromhex(certificate), 1 << 20).commits[0].replica
    genesis["validators"][signer]["public_key"] = SigningKey.from_seed(b"m" * 32).public_key.hex()
    swapped = tmp_path / "genesis.json"
    swapped.write_text(json.dumps(genesis))
    result = verify(out, out / "bundle.json", str(swapped))
    assert result.exit_code == 1 and f"bad commit signature from replica {signer}" in result.stderr, result.output


def test_verify_without_a_bundle_or_with_garbage_says_why(made: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = made
    missing = verify(out, tmp_path / "none.json")
    assert missing.exit_code == 2 and "cannot read" in missing.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b'{"format": "p2pmed-report/1", "format": 2}')
    result = verify(out, garbage)
    assert result.exit_code == 1 and "not strict JSON" in result.stderr, result.output
    no_subject = run("report", "--home", str(out.parent / "node0"), "--out", str(tmp_path / "none"))
    assert no_subject.exit_code == 2 and "exactly one of --patient, --actor, --site, --network" in no_subject.stderr
