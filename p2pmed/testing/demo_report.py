"""The demo's compliance report scene: ``p2pmed report`` for the demo's patient, checked offline.

The hospital's node makes the bundle (``report.bundle``); it is checked from genesis.json
alone, as ``p2pmed report verify`` does, and rendered as HTML and PDF; then one altered
field of it is refused, naming the field. Last, the pharmacy's site report: its own trail and
the drug pack events it recorded, each proved.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from p2pmed.client.compliance_report import DISCLOSURE_KINDS, render_html, render_pdf
from p2pmed.consensus.report_bundle import BundleRefused, load_bundle
from p2pmed.crypto import Ed25519Verifier
from p2pmed.site.genesis import load_genesis
from p2pmed.site.home import GENESIS
from p2pmed.testing.process_network import ProcessNetwork

__all__ = ["report_scene"]


def report_scene(
    net: ProcessNetwork, node: int, patient: bytes, pharmacy: bytes, step: int, out: Callable[[str], None]
) -> None:
    directory = net.directory / "report"
    directory.mkdir(exist_ok=True)
    document = net.call(node, "report.bundle", by="patient", subject=patient.hex())["bundle"]
    data = json.dumps(document, indent=1).encode()
    (directory / "bundle.json").write_bytes(data)
    genesis = load_genesis(net.homes[node] / GENESIS)
    report = load_bundle(data, genesis.chain_id, genesis.validator_keys, Ed25519Verifier())
    render_html(report, genesis.hash, directory / "report.html")
    render_pdf(report, genesis.hash, directory / "report.pdf")
    disclosures = [entry.kind for entry in report.entries if entry.kind in DISCLOSURE_KINDS]
    out(
        f"{step}. the hospital's compliance officer runs p2pmed report for the patient: {len(report.entries)} audit"
        f" entries ({len(disclosures)} disclosures: {', '.join(disclosures)}), each with its proof to block"
        f" {report.proof.header.height}, certified by {len(report.proof.certificate.commits)} validators;"
        f" {'complete' if report.proof.complete else 'not proved complete'} ({len(report.entries)} of the"
        f" {report.count} entries the ledger counts); a {len(data) // 1024} KB bundle checked from genesis.json"
        " alone, and an HTML and a PDF report"
    )
    [glass] = [entry for entry in document["entries"] if entry["kind"] == "break-glass"]
    glass["purpose"] = "TREAT"
    try:
        load_bundle(json.dumps(document).encode(), genesis.chain_id, genesis.validator_keys, Ed25519Verifier())
        raise AssertionError("an altered bundle must be refused")
    except BundleRefused as refused:
        out(f"{step + 1}. the break-glass entry's purpose altered in the bundle: refused offline, {refused}")
    site = net.call(node, "report.bundle", by="site", subject=pharmacy.hex())["bundle"]
    checked = load_bundle(json.dumps(site).encode(), genesis.chain_id, genesis.validator_keys, Ed25519Verifier())
    events = [record["event"] for record in site["activity"] if record["kind"] == "supply-event"]
    out(
        f"{step + 2}. the pharmacy's site report: {len(checked.activity)} drug pack events it recorded"
        f" ({', '.join(events)}), each proved to block {checked.proof.header.height}"
    )
