"""The end-to-end demo behind ``make demo``: four real ``p2pmed node`` processes on 127.0.0.1.

Four sites (a hospital, a laboratory, a pharmacy and a distributor) each run a
node: its own keys, SQLite store and libp2p host (TCP, Noise, Yamux), PBFT over
direct streams, transactions over gossipsub. The story: the hospital registers
a patient and two clinicians; the patient grants the hospital and the lab (the
test order) access to lab results; the lab writes a result, encrypted, kept by two custodian sites; a
clinician reads it. Then the hospital's node, the primary, is killed with
SIGKILL: the other three elect a new primary and carry on. The patient revokes
the consent and the clinician's next read is refused; an emergency physician
breaks the glass and reads it, on the record. The validators admit a drug
manufacturer by vote; a pack travels manufacturer -> distributor -> pharmacy,
is verified genuine and dispensed, and a counterfeit serial is flagged. A pulse
oximeter sends readings a clinician reads and proves (``demo_devices``). A burst
of load commits; the killed node restarts from its store, catches up, and all
four show the same head and the same audit trail.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from p2pmed.client.load import run_load
from p2pmed.client.records import LedgerRefused, read_record, submit, write_record
from p2pmed.crypto import EncryptionPrivateKey, Kem, SigningKey
from p2pmed.ledger.contracts.consent import ConsentGrant, ConsentRevoke
from p2pmed.ledger.contracts.identity import OrganisationProfile, OrgProposal, PersonRegister
from p2pmed.ledger.contracts.supply import (
    PackRef,
    PrefixGrant,
    SupplyCommission,
    SupplyDispense,
    SupplyReceive,
    SupplyShip,
    SupplyVerify,
)
from p2pmed.rpc.client import RpcClient
from p2pmed.site.config import NodeConfig
from p2pmed.site.home import load_home
from p2pmed.testing.demo_devices import device_scene
from p2pmed.testing.demo_report import report_scene
from p2pmed.testing.demo_research import research_scene
from p2pmed.testing.demo_supply import SIGNAL_WEEK_MS, supply_scene, vote_signal_week
from p2pmed.testing.process_network import ProcessNetwork

CHAIN_ID = "p2pmed-demo"
SITES = ("hospital", "laboratory", "pharmacy", "distributor")
HOSPITAL, LAB, PHARMACY, DISTRIBUTOR = range(4)
DAY_MS = 24 * 3600 * 1000
CONSENT_DAYS = 365
WAIT_S = 60.0
CONFIG = NodeConfig(log_format="json", request_timeout_ms=1_500, view_change_timeout_ms=1_500, probes_from_anyone=True)
GTIN = "10614141073464"
GTIN_PREFIX = "0614141"
LAB_RESULT = b'{"resourceType": "Observation", "code": {"text": "HbA1c"}, "valueQuantity": {"value": 6.1, "unit": "%"}}'


def run(out: Callable[[str], None] = print, directory: Path | None = None) -> ProcessNetwork:
    """Run the demo; returns the (stopped) network so tests can inspect its homes."""
    if directory is not None:
        return _run(out, directory)
    with tempfile.TemporaryDirectory(prefix="p2pmed-demo-") as scratch:
        return _run(out, Path(scratch))


def _run(out: Callable[[str], None], directory: Path) -> ProcessNetwork:
    with ProcessNetwork(directory, len(SITES), CONFIG, CHAIN_ID) as net:
        _story(net, out)
        return net


class _Person:
    def __init__(self, name: str, role: str, kem: Kem = Kem.X25519) -> None:
        self.name, self.role = name, role
        self.key, self.encryption = SigningKey.generate(), EncryptionPrivateKey.generate(kem)

    @property
    def id(self) -> bytes:
        return self.key.public_key


def _heights(net: ProcessNetwork) -> str:
    parts = []
    for index, site in enumerate(SITES):
        if net.processes[index] is None:
            parts.append(f"{site} down")
            continue
        status = net.call(index, "node.status")
        parts.append(f"{site} {status['height']} (view {status['view']})")
    return ", ".join(parts)


def _story(net: ProcessNetwork, out: Callable[[str], None]) -> None:
    out(
        f"1. four sites start their nodes as separate processes on 127.0.0.1 (logs in {net.directory}): "
        f"{', '.join(SITES)}"
    )
    net.start_all(WAIT_S)
    sites = [load_home(home).key for home in net.homes]
    out(f"   PBFT with n = 4 tolerates f = 1 faulty site; heights: {_heights(net)}")

    patient = _Person("the patient", "patient", Kem.MLKEM768_X25519)
    clinician, emergency = _Person("Dr Adams", "clinician"), _Person("Dr Baker (A&E)", "clinician")
    with RpcClient(net.homes[HOSPITAL] / CONFIG.rpc_socket) as hospital:
        for person in (patient, clinician, emergency):
            submit(
                hospital,
                sites[HOSPITAL],
                "identity.person.register",
                PersonRegister(person.id, person.role, person.encryption.public_key),
            )
        out(
            "2. the hospital registers a patient (ML-KEM-768+X25519 encryption key) and two clinicians: keys and roles"
            " on the ledger, no names"
        )
        expiry = int(time.time() * 1000) + CONSENT_DAYS * DAY_MS
        for site in (HOSPITAL, LAB):  # the lab's grant is the test order: its care relationship
            granted = submit(
                hospital,
                patient.key,
                "consent.grant",
                ConsentGrant(patient.id, sites[site].public_key, ("laboratory",), ("TREAT",), expiry),
            )
        out(
            "3. the patient grants the hospital and the lab (the test order) access to laboratory results for"
            f" treatment (block {granted['height']})"
        )

    with RpcClient(net.homes[LAB] / CONFIG.rpc_socket) as lab:
        written = write_record(lab, sites[LAB], patient.id, "laboratory", LAB_RESULT)
        record_id = written.record_id
        threshold = lab.call("record.get", record_id=record_id.hex())["threshold"]
    out(
        f"4. the lab writes an HbA1c result: AES-256-GCM ciphertext kept by {len(written.stored)} custodian sites"
        f" ({', '.join(written.stored)}), each holding one share of its key: any {threshold} open it, no single site"
        f" can; only its SHA-256 is anchored on the ledger (record {record_id.hex()[:16]}…)"
    )
    with RpcClient(net.homes[HOSPITAL] / CONFIG.rpc_socket) as hospital:
        opened = read_record(hospital, clinician.key, clinician.encryption, record_id)
    out(
        f"5. {clinician.name} asks to read it; the ledger finds the hospital's consent, the custodians re-seal their"
        f" key shares to the clinician's key, and the clinician's client combines them and decrypts: {opened.decode()}"
    )

    primary = net.call(LAB, "node.status")["primary"]
    net.kill(primary)
    out(f"6. kill -9 the primary ({SITES[primary]}): its process dies at once, its store stays on disk")
    survivors = [index for index in range(len(SITES)) if index != primary]
    with RpcClient(net.homes[survivors[0]] / CONFIG.rpc_socket) as node:
        revoked = submit(
            node, patient.key, "consent.revoke", ConsentRevoke(patient.id, sites[HOSPITAL].public_key, ("laboratory",))
        )
        out(
            f"7. the other three elect a new primary and carry on: the patient revokes the hospital's consent"
            f" (block {revoked['height']}); heights: {_heights(net)}"
        )
        try:
            read_record(node, clinician.key, clinician.encryption, record_id)
            raise AssertionError("a read after the revoke must be refused")
        except LedgerRefused as refused:
            out(
                f"8. {clinician.name}'s next read is refused by the ledger, and the refusal is on the patient's"
                f" audit trail: {refused.reason}: {refused.detail}"
            )
        reason = "unconscious patient in A&E, checking diabetes history"
        opened = read_record(
            node, emergency.key, emergency.encryption, record_id, purpose="ETREAT", break_glass_reason=reason
        )
        out(
            f"9. {emergency.name} breaks the glass ({reason!r}): allowed without consent, read {len(opened)} bytes"
            f"{f' although custodian {SITES[primary]} is down' if SITES[primary] in written.stored else ''},"
            " and recorded on the ledger as a break-glass access the patient will see; the reason is sealed to the"
            " patient and the hospital, only its salted SHA-256 is on the ledger"
        )
        manufacturer = _supply_chain(net, node, sites, survivors, out)
        overseers = ((SITES[LAB], sites[LAB]), (SITES[HOSPITAL], sites[HOSPITAL]))
        supply_scene(node, manufacturer, GTIN, sites[DISTRIBUTOR], sites[PHARMACY], overseers, out)
        device_scene(node, sites[HOSPITAL], out)
        research_scene(node, sites[HOSPITAL], load_home(net.homes[HOSPITAL]).encryption_key, sites[:3], out)
    report = run_load(net.homes[survivors[1]] / CONFIG.rpc_socket, 200, rate=50, wait=True, timeout_s=WAIT_S)
    out(
        f"13. a burst of 200 probe transactions at 50 tx/s through the {SITES[survivors[1]]}: "
        f"{'; '.join(report.lines())}"
    )

    net.start(primary)
    net.wait_ready(primary, WAIT_S)
    head = net.wait_for(None, lambda: _same_head(net), WAIT_S, "to reach the same head")
    out(
        f"14. the {SITES[primary]} node restarts from its store and catches up; heights: {_heights(net)};"
        f" identical head hash on all four: yes ({head[:16]}…)"
    )
    trail = net.call(primary, "audit.query", by="patient", subject=patient.id.hex())["entries"]
    events = ", ".join(
        entry["kind"] + (f" ({entry['detail'][:30]}…)" if entry["kind"] == "break-glass" else "") for entry in trail
    )
    out(f"15. the patient's audit trail, as the restarted {SITES[primary]} node tells it: {events}")
    report_scene(net, HOSPITAL, patient.id, sites[PHARMACY].public_key, 16, out)
    codes = [net.stop(index) for index in range(len(SITES))]
    out(
        "demo finished: four processes agreed, a killed primary was survived and caught up; nodes stopped (exit "
        f"codes {codes})"
    )


def _supply_chain(
    net: ProcessNetwork, node: RpcClient, sites: list[SigningKey], voters: list[int], out: Callable[[str], None]
) -> SigningKey:
    """Set the chain's signal week, admit a manufacturer, which commissions, ships and sees a pack
    dispensed; returns its key."""
    vote_signal_week(node, [sites[voter] for voter in voters])  # before any supply event is counted
    manufacturer = SigningKey.generate()
    profile = OrganisationProfile(
        manufacturer.public_key, "Acme Pharma", "manufacturer", EncryptionPrivateKey.generate().public_key
    )
    for voter in voters:  # 3 of 4 validators: a quorum
        submit(node, sites[voter], "identity.org.propose", OrgProposal(profile))
    for voter in voters:  # and its GS1 company prefix: only it commissions GTINs that carry it
        submit(node, sites[voter], "supply.prefix.grant", PrefixGrant(manufacturer.public_key, GTIN_PREFIX))
    packs = tuple(PackRef(GTIN, serial) for serial in ("SN1001", "SN1002", "SN1003"))
    submit(
        node,
        manufacturer,
        "supply.commission",
        SupplyCommission(GTIN, "LOT-7", "2031-12-31", tuple(p.serial for p in packs)),
    )
    for sender, receiver in ((manufacturer, sites[DISTRIBUTOR]), (sites[DISTRIBUTOR], sites[PHARMACY])):
        shipped = submit(node, sender, "supply.ship", SupplyShip(receiver.public_key, packs[:2]))
        submit(node, receiver, "supply.receive", SupplyReceive(bytes.fromhex(shipped["tx_id"]), packs[:2], ()))
    out(
        f"10. the validators set this demo chain's diversion-signal week to {SIGNAL_WEEK_MS // 1000} s (production"
        f" keeps 7 days), admit a drug manufacturer and grant it GS1 company prefix {GTIN_PREFIX}, each by a vote"
        " of three; it commissions 3 serialised packs and ships two to the distributor, who receives them and ships"
        " them on to the pharmacy"
    )
    verdict = node.call(
        "supply.verify", gtin=GTIN, serial=packs[0].serial, organisation=sites[PHARMACY].public_key.hex()
    )
    submit(node, sites[PHARMACY], "supply.dispense", SupplyDispense(packs[:1]))
    history = " -> ".join(
        event["kind"] for event in node.call("supply.trace", gtin=GTIN, serial=packs[0].serial)["events"]
    )
    out(
        f"11. the pharmacist scans pack {packs[0].serial}: {verdict['status']} ({verdict['message']}); dispensed;"
        f" its trace: {history}"
    )
    submit(node, sites[PHARMACY], "supply.verify", SupplyVerify(GTIN, "FAKE0001", "LOT-7", "2031-12-31"))
    fake = node.call("supply.verify", gtin=GTIN, serial="FAKE0001")
    alerts = node.call("supply.alerts")["count"]
    out(
        f"12. a pack with serial FAKE0001 turns up: {fake['status']} ({fake['message']}); the scan left an alert on the"
        f" ledger for every site to see ({alerts} alert(s))"
    )
    return manufacturer


def _same_head(net: ProcessNetwork) -> str | None:
    heads = {net.call(index, "node.status")["last_block_hash"] for index in range(len(SITES))}
    return heads.pop() if len(heads) == 1 else None
