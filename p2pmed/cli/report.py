"""The ``p2pmed report`` commands: a compliance report bundle from a node, and its offline check.

``p2pmed report --patient ID --out DIR`` asks the node for the bundle (``report.bundle``),
writes ``DIR/bundle.json``, checks it as ``report verify`` would, against the home's
genesis.json, and renders what checked out as ``DIR/report.html`` and ``DIR/report.pdf``.
``p2pmed report verify BUNDLE --genesis genesis.json`` needs no node: it exits 0 and says
what it proved, or exits 1 naming what failed (2 for a bad genesis file or option).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, JSON_OPTION, emit, fail, node
from p2pmed.cli.signing import ID, UtcTime
from p2pmed.client.compliance_report import render_html, render_pdf, verification_lines
from p2pmed.consensus.report_bundle import BUNDLE_SIZE_MAX, BundleRefused, VerifiedReport, load_bundle
from p2pmed.crypto import Ed25519Verifier
from p2pmed.site.genesis import Genesis, GenesisError, load_genesis
from p2pmed.site.home import GENESIS

__all__ = ["REPORT_COMMANDS"]

BUNDLE_FILE, HTML_FILE, PDF_FILE = "bundle.json", "report.html", "report.pdf"


def _genesis(path: Path) -> Genesis:
    try:
        return load_genesis(path)
    except GenesisError as error:
        fail(str(error), EXIT_BAD_INPUT)


def _verified(bundle: Path, genesis: Genesis) -> VerifiedReport:
    try:
        with bundle.open("rb") as file:
            data = file.read(BUNDLE_SIZE_MAX + 1)
    except OSError as error:
        fail(f"{bundle}: cannot read: {error.strerror}", EXIT_BAD_INPUT)
    try:
        return load_bundle(data, genesis.chain_id, genesis.validator_keys, Ed25519Verifier())
    except BundleRefused as error:
        fail(f"{bundle}: refused: {error}", EXIT_FAILURE)


def _render(report: VerifiedReport, genesis: Genesis, html: Path | None, pdf: Path | None) -> list[str]:
    written = []
    if html is not None:
        render_html(report, genesis.hash, html)
        written.append(str(html))
    if pdf is not None:
        try:
            render_pdf(report, genesis.hash, pdf)
        except ImportError:
            fail("the PDF needs ReportLab: pip install 'p2pmed[reports]' (or leave out the PDF)")
        written.append(str(pdf))
    return written


def _summary(report: VerifiedReport, genesis: Genesis, written: list[str]) -> dict[str, Any]:
    proof = report.proof
    return {
        "verified": True,
        "by": proof.by,
        "subject": proof.subject.hex(),
        "entries": len(report.entries),
        "activity": len(report.activity),
        "count": report.count,
        "complete": proof.complete,
        "anchor_height": proof.header.height,
        "anchor_block_hash": report.anchor_block_hash.hex(),
        "anchor_epoch": report.anchor_epoch,
        "epochs_followed": len(report.epochs),
        "statement": verification_lines(report, genesis.hash),
        "written": written,
    }


def _human(summary: dict[str, Any]) -> str:
    lines = ["verified: every entry, certificate and validator set change checked from genesis", *summary["statement"]]
    return "\n".join([*lines, *(f"wrote {path}" for path in summary["written"])])


@click.group(invoke_without_command=True)
@click.pass_context
@click.option("--home", type=click.Path(path_type=Path), envvar="P2PMED_HOME", help="The node's home directory.")
@JSON_OPTION
@click.option("--patient", type=ID, default=None, help="Report on this patient.")
@click.option("--actor", type=ID, default=None, help="Report on this person's or organisation's actions.")
@click.option(
    "--site", type=ID, default=None, help="Report on this organisation: its actions, supply events and trials."
)
@click.option("--network", is_flag=True, help="Report on every patient of the network.")
@click.option("--since", type=UtcTime(), default=None, help="From this time (UTC) on.")
@click.option("--until", type=UtcTime(), default=None, help="Before this time (UTC).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None, help="Directory to write to.")
@click.option("--no-pdf", is_flag=True, help="Write the bundle and the HTML report only.")
def report(
    context: click.Context,
    home: Path | None,
    as_json: bool,
    patient: bytes | None,
    actor: bytes | None,
    site: bytes | None,
    network: bool,
    since: int | None,
    until: int | None,
    out: Path | None,
    no_pdf: bool,
) -> None:
    """A compliance report for exactly one of --patient, --actor, --site, --network: an accounting of disclosures
    (HIPAA 45 CFR 164.528), consent history and refusals, as a bundle of proofs anyone can check
    offline (`p2pmed report verify`) and as HTML and PDF."""
    if context.invoked_subcommand is not None:
        return
    subjects = (("patient", patient), ("actor", actor), ("site", site), ("network", b"" if network else None))
    chosen = [(by, subject) for by, subject in subjects if subject is not None]
    if len(chosen) != 1 or home is None or out is None:
        fail("give --home, --out and exactly one of --patient, --actor, --site, --network", EXIT_BAD_INPUT)
    by, subject = chosen[0]
    with node(home) as client:
        answer = client.call("report.bundle", by=by, subject=subject.hex(), since_ms=since or 0, until_ms=until)
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / BUNDLE_FILE
    bundle.write_text(json.dumps(answer["bundle"], indent=1) + "\n", encoding="utf-8")
    genesis = _genesis(home / GENESIS)
    verified = _verified(bundle, genesis)
    written = [str(bundle), *_render(verified, genesis, out / HTML_FILE, None if no_pdf else out / PDF_FILE)]
    emit(_summary(verified, genesis, written), as_json, _human)


@report.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--genesis",
    "genesis_path",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The network's genesis.json: the only thing trusted.",
)
@click.option("--html", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write the report as HTML.")
@click.option("--pdf", type=click.Path(path_type=Path, dir_okay=False), default=None, help="Write the report as PDF.")
@JSON_OPTION
def report_verify(bundle: Path, genesis_path: Path, html: Path | None, pdf: Path | None, as_json: bool) -> None:
    """Check a report bundle offline, with no node: every entry against its proof, every block
    against its certificate and the validator set of its epoch, followed from genesis."""
    genesis = _genesis(genesis_path)
    verified = _verified(bundle, genesis)
    emit(_summary(verified, genesis, _render(verified, genesis, html, pdf)), as_json, _human)


REPORT_COMMANDS = (report,)
