"""The ``p2pmed research`` commands: studies, study consent and de-identified exports.
Signing, reads, output and exit codes as in ``p2pmed.cli.signing``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, emit, fail, node, utc_time
from p2pmed.cli.key_protection import given_protection
from p2pmed.cli.signing import ID, UtcTime, load_key, read, read_options, short_id, submit, write_options
from p2pmed.client.records import LedgerRefused
from p2pmed.client.research import ExportRefused, export_study, study_secret
from p2pmed.crypto import CryptoError, KeyFileError, load_encryption_key
from p2pmed.interop.deidentify import KAnonymityError
from p2pmed.ledger.contracts.consent import StudyConsent, StudyWithdraw
from p2pmed.ledger.contracts.policy import CATEGORIES
from p2pmed.ledger.contracts.studies import (
    DEIDENTIFICATION_LEVELS,
    K_ANONYMITY_MAX,
    K_ANONYMITY_MIN,
    StudyApprove,
    StudyRegister,
    StudyTerms,
)

__all__ = ["RESEARCH_COMMANDS"]

STUDY_ID = click.argument("study_id")


def human_study(result: dict[str, Any]) -> str:
    terms = result["terms"]
    state = "open" if result["open"] else ("approved, closed" if result["approved_height"] else "awaiting approval")
    return "\n".join(
        [
            f"study {result['study_id']}  {state}",
            f"  organisation {result['organisation']}",
            f"  ethics approval {terms['ethics_approval']}",
            f"  data use agreement sha256 {terms['data_use_agreement_sha256']}",
            f"  categories {', '.join(terms['categories'])}; {terms['deidentification']}; k = {terms['k_anonymity']}",
            f"  period {utc_time(terms['start_ms'])} .. {utc_time(terms['end_ms'])}",
            f"  sha256 {result['sha256']} (what validators approve)",
        ]
    )


def human_exports(result: dict[str, Any]) -> str:
    lines = [
        f"{utc_time(each['time_ms'])}  study {each['study_id']} to {short_id(each['organisation'])}: "
        f"{each['patients']} patients, {each['records']} records, manifest {each['manifest_sha256']}"
        for each in result["exports"]
    ]
    return "\n".join(lines) or "no research export included this patient"


@click.group()
def research() -> None:
    """Research studies: register and approve, consent and withdraw, export de-identified data sets."""


@research.command("register")
@write_options
@STUDY_ID
@click.option("--ethics", required=True, help="The ethics committee's (IRB's) approval reference.")
@click.option("--dua", type=click.Path(path_type=Path, dir_okay=False), default=None, help="The data use agreement.")
@click.option("--dua-sha256", type=ID, default=None, help="Or its SHA-256.")
@click.option("--category", "categories", multiple=True, required=True, type=click.Choice(sorted(CATEGORIES)))
@click.option("--deidentification", type=click.Choice(sorted(DEIDENTIFICATION_LEVELS)), default="safe-harbor")
@click.option("--k", "k_anonymity", type=click.IntRange(K_ANONYMITY_MIN, K_ANONYMITY_MAX), required=True)
@click.option("--start", type=UtcTime(), required=True, help="First day of the study's period.")
@click.option("--end", type=UtcTime(end_of_day=True), required=True, help="Last day of the study's period.")
def research_register(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    study_id: str,
    ethics: str,
    dua: Path | None,
    dua_sha256: bytes | None,
    categories: tuple[str, ...],
    deidentification: str,
    k_anonymity: int,
    start: int,
    end: int,
) -> None:
    """Register STUDY_ID, signed by the research organisation; it opens once 2f+1 validators approve it."""
    if (dua is None) == (dua_sha256 is None):
        fail("give exactly one of --dua FILE and --dua-sha256 HEX", EXIT_BAD_INPUT)
    if dua is not None:
        try:
            dua_sha256 = hashlib.sha256(dua.read_bytes()).digest()
        except OSError as error:
            fail(f"{dua}: {error.strerror}", EXIT_BAD_INPUT)
    assert dua_sha256 is not None
    terms = StudyTerms(ethics, dua_sha256, categories, deidentification, k_anonymity, start, end)
    submit(home, as_json, load_key(key_file), wait, timeout, "research.study.register", StudyRegister(study_id, terms))


@research.command("approve")
@write_options
@STUDY_ID
@click.option(
    "--sha256", "study_sha256", type=ID, required=True, help="The study's SHA-256 as `research show` gives it."
)
def research_approve(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, study_id: str, study_sha256: bytes
) -> None:
    """A validator's vote to approve STUDY_ID as registered (in force at 2f+1 votes)."""
    submit(
        home, as_json, load_key(key_file), wait, timeout, "research.study.approve", StudyApprove(study_id, study_sha256)
    )


def _for_patient(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    body: type[StudyConsent] | type[StudyWithdraw],
    study_id: str,
    patient: bytes | None,
) -> None:
    """Submit a study consent or withdrawal for ``patient``, by default the signer."""
    key = load_key(key_file)
    tx_type = "consent.study" if body is StudyConsent else "consent.study-withdraw"
    submit(home, as_json, key, wait, timeout, tx_type, body(patient or key.public_key, study_id))


@research.command("consent")
@write_options
@STUDY_ID
@click.option("--patient", type=ID, default=None, help="The patient's person id (default: the signer's key).")
def research_consent(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, study_id: str, patient: bytes | None
) -> None:
    """Consent to STUDY_ID as registered, signed by the patient (or a guardian or carer as delegate)."""
    _for_patient(home, as_json, key_file, wait, timeout, StudyConsent, study_id, patient)


@research.command("withdraw")
@write_options
@STUDY_ID
@click.option("--patient", type=ID, default=None, help="The patient's person id (default: the signer's key).")
def research_withdraw(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, study_id: str, patient: bytes | None
) -> None:
    """Withdraw from STUDY_ID: no later export includes the patient."""
    _for_patient(home, as_json, key_file, wait, timeout, StudyWithdraw, study_id, patient)


@research.command("show")
@read_options
@STUDY_ID
def research_show(home: Path, as_json: bool, study_id: str) -> None:
    """Show a study: its terms, whether it is open, and the SHA-256 validators approve."""
    read(home, as_json, human_study, "research.study", study_id=study_id)


@research.command("exports")
@read_options
@click.option("--patient", type=ID, required=True, help="The patient's person id.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def research_exports(home: Path, as_json: bool, patient: bytes, limit: int) -> None:
    """The research exports that included a patient, oldest first."""
    read(home, as_json, human_exports, "research.exports", patient=patient.hex(), limit=limit)


@research.command("export")
@write_options
@STUDY_ID
@click.option(
    "--encryption-key",
    "encryption_key_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The exporter's encryption key file: the key shares of each record open with it.",
)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True, help="A new directory.")
@click.option(
    "--secret",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The site's pseudonym secret for the study (default: HOME/research/STUDY_ID.secret, made on first use).",
)
def research_export(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    study_id: str,
    encryption_key_file: Path,
    out: Path,
    secret: Path | None,
) -> None:
    """Export STUDY_ID's consented patients' records, de-identified (Safe Harbor) and k-anonymous, into
    the new directory --out; its manifest is anchored on the ledger and each patient's inclusion audited."""
    key = load_key(key_file)
    try:
        encryption = load_encryption_key(encryption_key_file, given_protection())
    except KeyFileError as error:
        fail(str(error), EXIT_BAD_INPUT)
    if out.exists():
        fail(f"{out} exists: an export goes into a new directory", EXIT_BAD_INPUT)
    with node(home) as client:
        try:
            pseudonym_secret = study_secret(secret or home / "research" / f"{study_id}.secret")
            result = export_study(client, key, encryption, study_id, pseudonym_secret, out)
        except (ExportRefused, KAnonymityError, CryptoError) as error:
            fail(str(error))
        except LedgerRefused as refusal:
            fail(f"the ledger refused {refusal.tx_type} ({refusal.reason}): {refusal.detail}")
    emit(
        {
            "study_id": result.study_id,
            "out": str(result.out),
            "manifest_sha256": result.manifest_sha256,
            "patients": result.patients,
            "records": result.records,
            "smallest_class": result.smallest_class,
            "left_out": result.left_out,
            "tx_id": result.tx_id,
        },
        as_json,
        lambda shown: (
            f"exported {shown['records']} records of {shown['patients']} patients to {shown['out']}; "
            f"manifest sha256 {shown['manifest_sha256']} anchored by {shown['tx_id']}"
        ),
    )


RESEARCH_COMMANDS = [research]
