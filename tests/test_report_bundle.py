"""Compliance report bundles on real NodeCores (Ed25519, SQLite, the ledger): a patient's trail
proved to a certified block and checked offline from genesis alone, across a validator set
change; and every kind of tampering refused, naming what failed."""

from __future__ import annotations

import asyncio
import copy
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from p2pmed.client.compliance_report import render_html
from p2pmed.consensus.replica import ReplicaConfig
from p2pmed.consensus.report_bundle import ENTRIES_MAX, BundleRefused, bundle_document, load_bundle
from p2pmed.crypto import Ed25519Verifier, EncryptionPrivateKey, SigningKey
from p2pmed.ledger.contracts import membership
from p2pmed.ledger.contracts.consent import ConsentGrant, ConsentRevoke
from p2pmed.ledger.contracts.identity import PersonRegister
from p2pmed.ledger.contracts.membership import ValidatorChange, ValidatorJoin, ValidatorProfile
from p2pmed.ledger.contracts.probe import Probe
from p2pmed.ledger.contracts.trials import Protocol, TrialRegister
from p2pmed.ledger.tx import Transaction, sign_transaction
from p2pmed.node.api import report as report_api
from p2pmed.node.api.report import report_methods, report_proof
from p2pmed.rpc.errors import RpcError
from p2pmed.testing.local_network import LocalNetwork

CHAIN = "report-test"
CONFIG = ReplicaConfig(checkpoint_interval=4, watermark_window=16, batch_delay_ms=5)
PATIENT, DOCTOR = SigningKey.from_seed(b"p" * 32), SigningKey.from_seed(b"d" * 32)
FAR_MS = 4_102_444_800_000


class Chain:
    """A LocalNetwork with a patient whose trail has three consent changes."""

    def __init__(self, directory: Path, joiners: int = 0) -> None:
        self.network = LocalNetwork(directory, CHAIN, config=CONFIG, joiners=joiners)
        self.nonces: dict[bytes, int] = {}
        hospital = self.network.keys[0]
        for person in (PATIENT, DOCTOR):
            role = "patient" if person is PATIENT else "clinician"
            register = PersonRegister(person.public_key, role, EncryptionPrivateKey.generate().public_key)
            self.commit(hospital, "identity.person.register", register)

    def submit(self, signer: SigningKey, tx_type: str, body: object) -> Transaction:
        nonce = self.nonces.get(signer.public_key, 0)
        self.nonces[signer.public_key] = nonce + 1
        tx = sign_transaction(signer, CHAIN, tx_type, nonce, body)
        self.network.submit_everywhere(tx)
        return tx

    def commit(self, signer: SigningKey, tx_type: str, body: object) -> None:
        tx = self.submit(signer, tx_type, body)
        self.run_until(lambda: self.store.transaction(tx.id) is not None)
        stored = self.store.transaction(tx.id)
        assert stored is not None and stored.reject_reason is None, stored

    def run_until(self, done: Callable[[], bool]) -> None:
        for _ in range(600):
            if done():
                return
            self.network.run(100)
        raise AssertionError("the network did not get there in time")

    def consent_changes(self) -> None:
        grant = ConsentGrant(PATIENT.public_key, DOCTOR.public_key, ("laboratory",), ("TREAT",), FAR_MS)
        self.commit(PATIENT, "consent.grant", grant)
        self.commit(PATIENT, "consent.revoke", ConsentRevoke(PATIENT.public_key, DOCTOR.public_key, ("laboratory",)))
        self.commit(PATIENT, "consent.grant", grant)
        self.commit(SigningKey.from_seed(b"x" * 32), "load.probe", Probe("certify the state after the last"))

    @property
    def store(self):  # type: ignore[no-untyped-def]
        core = self.network.cores[0]
        assert core is not None
        return core.store

    def document(self, **period: int) -> dict[str, Any]:
        proof = report_proof(
            self.store, "patient", PATIENT.public_key, period.get("since_ms", 0), period.get("until_ms")
        )
        return json.loads(json.dumps(bundle_document(proof)))


def check(document: dict[str, Any], genesis_keys: tuple[bytes, ...]) -> Any:
    return load_bundle(json.dumps(document).encode(), CHAIN, genesis_keys, Ed25519Verifier())


def flip_hex(text: str, offset: int) -> str:
    """``text`` (hex) with one byte near ``offset`` from the end changed."""
    data = bytearray.fromhex(text)
    data[len(data) - offset] ^= 0x01
    return data.hex()


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    made = Chain(tmp_path_factory.mktemp("report"))
    made.consent_changes()
    yield made
    made.network.close()


def genesis_keys(chain: Chain) -> tuple[bytes, ...]:
    return chain.network.validators.keys


def test_a_patients_whole_trail_is_proved_complete_from_genesis(chain: Chain) -> None:
    report = check(chain.document(), genesis_keys(chain))
    assert [entry.kind for entry in report.entries] == ["consent-grant", "consent-revoke", "consent-grant"]
    assert report.count == 3 and report.proof.complete and report.anchor_epoch == 0 and report.epochs == ()


def test_a_period_is_proved_entry_by_entry_but_not_claimed_complete(chain: Chain) -> None:
    times = [entry["time_ms"] for entry in chain.document()["entries"]]
    report = check(chain.document(since_ms=times[1]), genesis_keys(chain))
    assert len(report.entries) == 2 and report.count == 3 and not report.proof.complete
    claimed = {**chain.document(since_ms=times[1]), "complete": True}
    with pytest.raises(BundleRefused, match="carries 2 of the 3 entries"):
        check(claimed, genesis_keys(chain))
    widened = chain.document(since_ms=times[1], until_ms=times[2])
    widened["entries"].append(chain.document()["entries"][2])
    with pytest.raises(BundleRefused, match=r"entries\[1\]: the entry's time is outside"):
        check(widened, genesis_keys(chain))


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value(target[int(last) if last.isdigit() else last])

    return change


def _drop_entry(document: dict[str, Any]) -> None:
    del document["entries"][1]


TAMPERINGS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "an entry's readable purpose": (_set("entries.0.purpose", lambda _: "RESEARCH"), r"entries\[0\]\.purpose"),
    "an entry's proved value": (_set("entries.1.value", lambda v: flip_hex(v, 40)), r"entries\[1\]"),
    "a byte of an entry's path": (_set("entries.2.path", lambda v: flip_hex(v, 3)), r"entries\[2\]"),
    "the count's path": (_set("count.path", lambda v: flip_hex(v, 3)), r"^count"),
    "a certificate signature": (_set("anchor.certificate", lambda v: flip_hex(v, 5)), r"anchor: certificate"),
    "the anchor header": (_set("anchor.header", lambda v: flip_hex(v, 70)), r"anchor"),
    "the anchor's previous hash": (_set("anchor.previous_hash", lambda v: flip_hex(v, 1)), r"anchor\.block_hash"),
    "a dropped entry of a complete bundle": (_drop_entry, r"carries 2 of the 3 entries"),
    "the chain": (_set("chain_id", lambda _: "other-chain"), r"chain_id"),
    "an added field": (_set("anchor", lambda anchor: {**anchor, "note": "trust me"}), r"anchor\.note"),
}


@pytest.mark.parametrize("tampering", list(TAMPERINGS))
def test_a_tampered_bundle_is_refused_naming_what_failed(chain: Chain, tampering: str) -> None:
    change, named = TAMPERINGS[tampering]
    document = copy.deepcopy(chain.document())
    change(document)
    with pytest.raises(BundleRefused, match=named):
        check(document, genesis_keys(chain))


def test_a_bundle_checked_against_another_validator_set_is_refused(chain: Chain) -> None:
    keys = genesis_keys(chain)
    swapped = (*keys[:3], SigningKey.from_seed(b"m" * 32).public_key)
    document = chain.document()
    check(document, keys)
    with pytest.raises(BundleRefused, match=r"anchor: certificate"):
        check(document, tuple(SigningKey.from_seed(bytes([9 + n]) * 32).public_key for n in range(4)))
    with pytest.raises(BundleRefused, match=r"anchor: certificate.*replica 3"):
        check(document, swapped)  # every vote in the certificate must be of the set, not only a quorum


def test_the_rpc_refuses_bad_requests_and_logs_a_patients_trail_read(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[tuple[Any, ...]] = []
    site_audit = SimpleNamespace(trail_read=lambda *args: reads.append(args))
    method = report_methods(SimpleNamespace(store=chain.store, site_audit=site_audit))["report.bundle"]  # type: ignore[arg-type]

    def call(**params: Any) -> dict[str, Any]:
        wire = {name: value.hex() if isinstance(value, bytes) else value for name, value in params.items()}
        return asyncio.run(method.handler(method.bind("report.bundle", wire)))

    answer = call(by="patient", subject=PATIENT.public_key)
    assert len(answer["bundle"]["entries"]) == 3 and reads == [(PATIENT.public_key, 0, None, ENTRIES_MAX, "report")]
    for params, named in (
        ({"by": "neighbour", "subject": PATIENT.public_key}, '"by" is one of patient, actor, site'),
        ({"by": "patient", "subject": b""}, '"subject" an id'),
        ({"by": "patient", "subject": PATIENT.public_key, "since_ms": 5, "until_ms": 5}, '"until_ms" after it'),
    ):
        with pytest.raises(RpcError, match=named):
            call(**params)
    monkeypatch.setattr(report_api, "ENTRIES_MAX", 2)
    with pytest.raises(RpcError, match="more than 2 entries in the period"):
        call(by="patient", subject=PATIENT.public_key)
    assert len(reads) == 2, "a request refused for its parameters reads and logs nothing"
    monkeypatch.undo()
    call(by="network", subject=b"")
    assert reads[-1] == (b"", 0, None, ENTRIES_MAX, "report"), "every patient's trail read: logged"
    with pytest.raises(RpcError, match='"" for the network'):
        call(by="network", subject=PATIENT.public_key)


def test_a_sites_report_proves_the_trials_it_sponsors_and_its_own_trail(chain: Chain) -> None:
    hospital = chain.network.keys[0]
    protocol = Protocol(bytes(32), ("hba1c at 26 weeks",), (), 200)
    chain.commit(hospital, "trial.register", TrialRegister("NCT00000018", protocol))
    chain.commit(SigningKey.from_seed(b"x" * 32), "load.probe", Probe("certify the trial"))
    proof = report_proof(chain.store, "site", hospital.public_key, 0, None)
    document = json.loads(json.dumps(bundle_document(proof)))
    report = check(document, genesis_keys(chain))
    [trial] = document["activity"]
    assert (trial["kind"], trial["trial_id"], trial["sponsor"]) == ("trial", "NCT00000018", hospital.public_key.hex())
    assert [activity.kind for activity in report.activity] == ["trial"]
    assert report.count == len(report.entries) and report.proof.complete  # the site's own trail, as actor
    page = chain.network.paths[0].parent / "site.html"
    render_html(report, bytes(32), page)
    assert "Clinical trials sponsored" in page.read_text() and "NCT00000018" in page.read_text()
    other = report_proof(chain.store, "site", chain.network.keys[1].public_key, 0, None)
    assert other.activity == ()
    for tampered, named in (
        (_set("activity.0.enrolled", lambda _: 150), r"activity\[0\]\.enrolled"),
        (_set("activity.0.value", lambda v: flip_hex(v, 10)), r"activity\[0\]"),
        (_set("subject", lambda _: chain.network.keys[1].public_key.hex()), r"count|activity\[0\]"),
        (_set("by", lambda _: "actor"), r"activity: only a site's bundle carries activity"),
    ):
        copied = copy.deepcopy(document)
        tampered(copied)
        with pytest.raises(BundleRefused, match=named):
            check(copied, genesis_keys(chain))


def test_the_networks_report_holds_every_patients_entries_and_proves_it(chain: Chain) -> None:
    other = SigningKey.from_seed(b"o" * 32)
    register = PersonRegister(other.public_key, "patient", EncryptionPrivateKey.generate().public_key)
    chain.commit(chain.network.keys[0], "identity.person.register", register)
    grant = ConsentGrant(other.public_key, DOCTOR.public_key, ("imaging",), ("TREAT",), FAR_MS)
    chain.commit(other, "consent.grant", grant)
    chain.commit(SigningKey.from_seed(b"x" * 32), "load.probe", Probe("certify the other patient's grant"))
    document = json.loads(json.dumps(bundle_document(report_proof(chain.store, "network", b"", 0, None))))
    report = check(document, genesis_keys(chain))
    assert {entry.patient for entry in report.entries} == {PATIENT.public_key, other.public_key}
    assert report.count == len(report.entries) == 4 and report.proof.complete
    for tampered, named in (
        (_drop_entry, r"carries 3 of the 4 entries"),
        (_set("subject", lambda _: PATIENT.public_key.hex()), r"subject: the network's bundle has none"),
        (_set("by", lambda _: "patient"), r"subject: the network's bundle has none"),
    ):
        copied = copy.deepcopy(document)
        tampered(copied)
        with pytest.raises(BundleRefused, match=named):
            check(copied, genesis_keys(chain))


def test_garbage_is_refused_with_a_reason() -> None:
    for data, named in ((b"\xff", "not UTF-8"), (b"[]", "JSON object"), (b'{"format": "x"}', "format")):
        with pytest.raises(BundleRefused, match=named):
            load_bundle(data, CHAIN, (bytes(32),), Ed25519Verifier())


def test_random_corruption_is_refused_or_changes_nothing(chain: Chain) -> None:
    """Bundles are untrusted input: whatever bytes change, the verifier refuses with a reason
    (``BundleRefused``, no other exception) or accepts a document equal to the original."""
    document = chain.document()
    data = json.dumps(document).encode()
    rng = random.Random(18)
    for _ in range(300):
        corrupted = bytearray(data)
        for _ in range(rng.choice((1, 3))):
            corrupted[rng.randrange(len(corrupted))] = (
                rng.choice(b'0123456789abcdef"{}[],: x') if rng.random() < 0.8 else rng.randrange(256)
            )
        try:
            load_bundle(bytes(corrupted), CHAIN, genesis_keys(chain), Ed25519Verifier())
        except BundleRefused:
            continue
        assert json.loads(bytes(corrupted)) == document


# -- across a validator set change -----------------------------------------------------------------


def test_a_bundle_adopts_each_new_set_on_the_word_of_the_set_before(tmp_path: Path) -> None:
    made = Chain(tmp_path, joiners=1)
    network, newcomer = made.network, 4
    key = network.keys[newcomer]
    profile = ValidatorProfile(
        key.public_key, network.key(0), "/ip4/127.0.0.1/tcp/27004", network.encryption_key(newcomer).public_key
    )
    change = ValidatorChange(
        remove=(network.key(3),), join=(ValidatorJoin(profile, membership.sign_join(key, profile, CHAIN)),)
    )
    for voter in range(3):
        made.submit(network.keys[voter], "validator.change", change)
    made.run_until(lambda: made.store.epoch_proof(1) is not None)
    pending = made.document()  # the change passed; the old set still orders the anchor
    assert len(pending["epochs"]) == 1 and pending["anchor"]["block_height"] < pending["epochs"][0]["first_height"]
    check(pending, network.validators.keys)
    with pytest.raises(
        BundleRefused, match=r"latest: the anchor's state is at epoch 1, the bundle carries the sets up to 0"
    ):
        check({**pending, "epochs": []}, network.validators.keys)
    made.run_until(lambda: all(core is None or core.validators.epoch == 1 for core in network.cores))
    made.consent_changes()
    document = made.document()
    keys = network.validators.keys
    report = check(document, keys)
    assert report.anchor_epoch == 1 and [epoch.number for epoch in report.epochs] == [1]
    assert document["epochs"][0]["validators"][-1] == key.public_key.hex()
    for tampered, named in (
        (_set("epochs.0.validators.0", lambda _: "00" * 32), r"epochs\[0\]\.validators\[0\]"),
        (_set("epochs.0.proof", lambda v: flip_hex(v, 5)), r"epochs\[0\]"),
        (_set("epochs", lambda _: []), r"anchor: certificate"),
    ):
        copied = copy.deepcopy(document)
        tampered(copied)
        with pytest.raises(BundleRefused, match=named):
            check(copied, keys)
    network.close()
