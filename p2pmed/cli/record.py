"""The ``p2pmed record`` commands: write, read, erase and show encrypted health records.

Keys and content stay on this machine: ``p2pmed.client.records`` encrypts and
decrypts here, and the node only carries the anchor, ciphertexts and sealed key shares.
Unlike the other writes (``p2pmed.cli.signing``), every record command waits for
the ledger's decision, because content moves only after it: the ciphertext goes
to the custodians once its ``record.add`` anchor has committed, and comes back
once the reader's ``record.read`` has.

Plaintext is never logged or echoed; ``record read`` prints it, or writes it to a
new file of mode 0600, and that is its only way out. Exit codes as in
``p2pmed.cli.signing``: 0 done; 1 the node is not running, or the ledger or a
custodian refused (the reason is printed); 2 bad input, found before the node is
asked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from p2pmed import codec
from p2pmed.cli.common import EXIT_BAD_INPUT, HOME_OPTION, JSON_OPTION, emit, fail, node, utc_time
from p2pmed.cli.key_protection import given_protection, protection_options
from p2pmed.cli.signing import (
    FHIR_REFS_OPTION,
    FHIR_RELEASE_OPTION,
    ID,
    KEY_OPTION,
    SIGNER_PROTECTION_OPTIONS,
    read_fhir,
)
from p2pmed.client.records import CustodyFailed, LedgerRefused, open_reason, read_record, submit, write_record
from p2pmed.crypto import NONCE_SIZE, CryptoError, KeyFileError, load_encryption_key, load_signing_key
from p2pmed.keys_at_rest import KeyProtection
from p2pmed.ledger.contracts.consent import CATEGORIES, PURPOSES
from p2pmed.ledger.contracts.records import REVIEW_FINDINGS, SIZE_MAX, BreakGlassReview, RecordErase, RecordRead
from p2pmed.ledger.tx import decode_transaction
from p2pmed.rpc.client import RpcClient

__all__ = ["PLAINTEXT_SIZE_MAX", "RECORD_COMMANDS", "check_new_file", "deciding", "load_key_file", "write_private"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

AEAD_TAG_SIZE = 16
PLAINTEXT_SIZE_MAX = SIZE_MAX - NONCE_SIZE - AEAD_TAG_SIZE
"""The largest content a record holds: its ciphertext (nonce, content, AES-GCM tag) is at most ``SIZE_MAX``."""

RECORD_OPTION = click.option("--record", "record_id", type=ID, required=True, help="The record's id.")


@dataclass(frozen=True)
class NewRecord:
    """What ``record add`` encrypts, and for whom."""

    patient: bytes
    category: str
    plaintext: bytes


# -- input ---------------------------------------------------------------------------------


def load_key_file(loader: Callable[[Path, KeyProtection | None], T], path: Path) -> T:
    """A key file read by ``loader`` (encrypted, with ``--passphrase-file`` or
    ``--master-key-file``); a missing, unreadable or wrong one is bad input."""
    try:
        return loader(path, given_protection())
    except KeyFileError as error:
        fail(str(error), EXIT_BAD_INPUT)


def _read_file(path: Path, size_max: int) -> bytes:
    """At most ``size_max + 1`` bytes of ``path``: enough to tell a file that is too big."""
    try:
        with path.open("rb") as source:
            return source.read(size_max + 1)
    except OSError as error:
        fail(f"{path}: {error.strerror}", EXIT_BAD_INPUT)


def _from_fhir(path: Path, release: str, references: dict[str, bytes], category: str) -> NewRecord:
    """The record a FHIR clinical resource stands for: validated, its patient and category
    taken from the resource (an Observation that codes no category takes ``category``, or the
    one its LOINC code implies), its content the canonical JSON that ``import_resource`` made."""
    from p2pmed.interop.fhir import ClinicalData

    imported = read_fhir(path, release, references, category)
    if not isinstance(imported, ClinicalData):
        fail(
            f"{path}: only an Observation, Condition or MedicationRequest becomes a record; a Patient stays at the site"
            " and a Consent is granted with p2pmed consent grant",
            EXIT_BAD_INPUT,
        )
    return NewRecord(imported.patient, imported.category, imported.content)


def _new_record(
    plain_file: Path | None,
    fhir_file: Path | None,
    release: str,
    references: dict[str, bytes],
    patient: bytes | None,
    category: str | None,
) -> NewRecord:
    """The record to write, from exactly one of ``--file`` and ``--fhir``. With ``--fhir``,
    ``--patient`` and ``--category`` may only confirm what the resource says, so that a
    typo cannot file a record under another patient; ``--category`` also names the category
    of an Observation that has none."""
    if (plain_file is None) == (fhir_file is None):
        fail("give exactly one of --file FILE and --fhir FILE", EXIT_BAD_INPUT)
    if fhir_file is None:
        assert plain_file is not None
        if references:
            fail("--ref maps references in a FHIR resource: give it with --fhir", EXIT_BAD_INPUT)
        if patient is None or category is None:
            fail("--file needs --patient and --category", EXIT_BAD_INPUT)
        found = NewRecord(patient, category, _read_file(plain_file, PLAINTEXT_SIZE_MAX))
    else:
        found = _from_fhir(fhir_file, release, references, category or "")
        if patient is not None and patient != found.patient:
            fail(f"--patient {patient.hex()} is not the resource's subject {found.patient.hex()}", EXIT_BAD_INPUT)
        if category is not None and category != found.category:
            fail(f"--category {category} is not the resource's category {found.category}", EXIT_BAD_INPUT)
    if len(found.plaintext) > PLAINTEXT_SIZE_MAX:
        fail(f"the content is more than {PLAINTEXT_SIZE_MAX} bytes, the most a record holds", EXIT_BAD_INPUT)
    return found


def check_new_file(out: Path | None) -> None:
    """Refuse, before the read is on the ledger, an ``--out`` that could not be written."""
    if out is None:
        return
    if out.exists():
        fail(f"{out}: already exists; refusing to overwrite it", EXIT_BAD_INPUT)
    if not out.parent.is_dir():
        fail(f"{out.parent}: no such directory", EXIT_BAD_INPUT)


# -- talking to the node ---------------------------------------------------------------------


@contextmanager
def deciding(home: Path) -> Iterator[RpcClient]:
    """``node(home)``, where a refusal by the ledger, custodians that all refused a record,
    or key shares or a ciphertext that do not open here, also exit 1 with the reason. A
    custodian's refusal to serve a read is an RPC error, which ``node`` reports."""
    with node(home) as client:
        try:
            yield client
        except LedgerRefused as refusal:
            detail = f": {refusal.detail}" if refusal.detail else ""
            fail(f"the ledger refused {refusal.tx_type} ({refusal.reason}){detail}")
        except CustodyFailed as failure:
            reasons = "; ".join(f"{custodian}: {reason}" for custodian, reason in failure.failed.items())
            fail(
                f"the anchor of record {failure.record_id.hex()} is committed, but no custodian took its ciphertext: "
                f"{reasons}"
            )
        except CryptoError as error:
            fail(str(error))


# -- output ----------------------------------------------------------------------------------


def _is_text(data: bytes) -> bool:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return False
    return all(char.isprintable() or char in "\t\n\r" for char in text)


def write_private(path: Path, data: bytes) -> None:
    """Write a new file only its owner can read: a record's content is health data."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)


def _deliver(record_id: bytes, plaintext: bytes, out: Path | None) -> None:
    """Write the content to ``out``, else print it as it is. Binary content reaches a
    terminal only through ``out``: printed, it would garble the terminal."""
    if out is not None:
        try:
            write_private(out, plaintext)
        except OSError as error:
            fail(f"{out}: {error.strerror}")
        click.echo(f"wrote {len(plaintext)} bytes of record {record_id.hex()} to {out}")
        return
    terminal = sys.stdout.isatty()
    if terminal and not _is_text(plaintext):
        fail(
            f"record {record_id.hex()} is binary ({len(plaintext)} bytes): not printed to a terminal; read it with "
            "--out FILE"
        )
    click.echo(plaintext, nl=terminal and not plaintext.endswith(b"\n"))


def human_record(result: dict[str, Any]) -> str:
    state = f"ERASED at {utc_time(result['erased_ms'])}" if result["erased"] else "in force"
    lines = [
        f"record {result['record_id']}  {result['category']}, {state}",
        f"  patient    {result['patient']}",
        f"  written by {result['writer']} at height {result['height']} ({utc_time(result['written_ms'])})",
        f"  ciphertext {result['size']} bytes, sha256 {result['ciphertext_sha256']}",
    ]
    lines += [f"  custodian  {custodian}" for custodian in result["custodians"]]
    return "\n".join(lines)


# -- commands -----------------------------------------------------------------------------------


@click.group()
def record() -> None:
    """Encrypted health records: write, read (the ledger decides and audits), erase, show an anchor."""


@record.command("add")
@HOME_OPTION
@JSON_OPTION
@KEY_OPTION
@SIGNER_PROTECTION_OPTIONS
@click.option("--patient", type=ID, default=None, help="The patient's person id [with --fhir: the resource's subject].")
@click.option(
    "--category",
    type=click.Choice(sorted(CATEGORIES)),
    default=None,
    help="The data category [with --fhir: the resource's; for an Observation without one, this, else the one its"
    " LOINC code implies].",
)
@click.option(
    "--file", "plain_file", type=click.Path(path_type=Path, dir_okay=False), default=None, help="The content: any file."
)
@click.option(
    "--fhir",
    "fhir_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Or a FHIR JSON Observation, Condition or MedicationRequest, validated and kept as canonical JSON.",
)
@FHIR_RELEASE_OPTION
@FHIR_REFS_OPTION
def record_add(
    home: Path,
    as_json: bool,
    key_file: Path,
    patient: bytes | None,
    category: str | None,
    plain_file: Path | None,
    fhir_file: Path | None,
    release: str,
    refs: tuple[tuple[str, bytes], ...],
) -> None:
    """Encrypt a record here and share it: its anchor on the ledger, the ciphertext with f+1
    custodians. Signed by a clinician, an organisation or the patient. Prints the record id."""
    key = load_key_file(load_signing_key, key_file)
    new = _new_record(plain_file, fhir_file, release, dict(refs), patient, category)
    with deciding(home) as client:
        written = write_record(client, key, new.patient, new.category, new.plaintext)
    for custodian, reason in written.failed.items():
        click.echo(
            f"warning: custodian {custodian} did not take the ciphertext ({reason}); it copies it from another later",
            err=True,
        )
    result = {
        "record_id": written.record_id.hex(),
        "patient": new.patient.hex(),
        "category": new.category,
        "bytes": len(new.plaintext),
        "stored": list(written.stored),
        "failed": written.failed,
    }
    emit(result, as_json, lambda shown: shown["record_id"])


def _encryption_key_option(help_text: str) -> Callable[[F], F]:
    """``--encryption-key FILE``: a private encryption key file, for ``help_text``'s purpose."""
    return click.option(
        "--encryption-key",
        "encryption_key_file",
        type=click.Path(path_type=Path, dir_okay=False),
        required=True,
        help=help_text,
    )


@record.command("read")
@HOME_OPTION
@KEY_OPTION
@SIGNER_PROTECTION_OPTIONS
@_encryption_key_option("The reader's encryption key file (from p2pmed identity keys): the key shares open with it.")
@RECORD_OPTION
@click.option(
    "--purpose",
    type=click.Choice(sorted(PURPOSES)),
    default="TREAT",
    show_default=True,
    help="HL7 purpose of use; a consent is for one.",
)
@click.option(
    "--break-glass",
    "break_glass_reason",
    default="",
    metavar="REASON",
    help="A clinician's emergency read without consent, for this stated reason (sealed to the patient and "
    "the clinician's organisation; only its salted SHA-256 goes on the ledger); audited as break-glass.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write the content to this new file (mode 0600) instead of printing it.",
)
def record_read(
    home: Path,
    key_file: Path,
    encryption_key_file: Path,
    record_id: bytes,
    purpose: str,
    break_glass_reason: str,
    out: Path | None,
) -> None:
    """Read a record: the read is a transaction the ledger decides and audits; then the custodians
    hand over the ciphertext and their key shares sealed to the reader, which open here. Prints the content (binary
    content only with --out)."""
    key = load_key_file(load_signing_key, key_file)
    encryption_key = load_key_file(load_encryption_key, encryption_key_file)
    check_new_file(out)
    with deciding(home) as client:
        plaintext = read_record(client, key, encryption_key, record_id, purpose, break_glass_reason)
    _deliver(record_id, plaintext, out)


@record.command("erase")
@HOME_OPTION
@JSON_OPTION
@KEY_OPTION
@SIGNER_PROTECTION_OPTIONS
@RECORD_OPTION
def record_erase(home: Path, as_json: bool, key_file: Path, record_id: bytes) -> None:
    """Erase a record, signed by its patient or a delegate. The anchor stays, marked erased;
    every custodian deletes the ciphertext and the key shares, so no copy opens again."""
    key = load_key_file(load_signing_key, key_file)
    with deciding(home) as client:
        result = submit(client, key, "record.erase", RecordErase(record_id))
    emit(
        result,
        as_json,
        lambda erased: (
            f"record {record_id.hex()} erased at height {erased['height']}: "
            "its custodians delete the ciphertext and every key share"
        ),
    )


@record.command("reason")
@HOME_OPTION
@click.option("--event", type=ID, required=True, help="The break-glass read's transaction id.")
@_encryption_key_option(
    "The patient's or the organisation's encryption key file: one of the sealed copies opens with it."
)
@protection_options("the encryption key file")
def record_reason(home: Path, event: bytes, encryption_key_file: Path) -> None:
    """Open the stated reason of a break-glass read, sealed to the patient and the clinician's
    organisation, and check it against the SHA-256 on the ledger."""
    encryption_key = load_key_file(load_encryption_key, encryption_key_file)
    with node(home) as client:
        answer = client.call("tx.get", tx_id=event.hex())
    if "encoded" not in answer:
        fail(f"transaction {event.hex()} is not in a block on this node yet", EXIT_BAD_INPUT)
    tx = decode_transaction(bytes.fromhex(answer["encoded"]))  # the node's own committed bytes
    try:
        read = codec.from_value(RecordRead, tx.body, "body")
    except codec.CodecError:
        read = None
    if tx.type != "record.read" or read is None or not read.break_glass:
        fail(f"transaction {event.hex()} is not a break-glass read", EXIT_BAD_INPUT)
    for sealed in read.reason_sealed:
        try:
            click.echo(open_reason(sealed, encryption_key, read.record_id, read.reason_sha256))
            return
        except (CryptoError, codec.CodecError):
            continue
    fail("no sealed copy of the reason opens with this key", EXIT_BAD_INPUT)


@record.command("review")
@HOME_OPTION
@JSON_OPTION
@KEY_OPTION
@SIGNER_PROTECTION_OPTIONS
@click.option("--event", type=ID, required=True, help="The break-glass read's transaction id.")
@click.option("--finding", type=click.Choice(sorted(REVIEW_FINDINGS)), required=True)
def record_review(home: Path, as_json: bool, key_file: Path, event: bytes, finding: str) -> None:
    """Review a break-glass read, signed by the clinician's organisation: once, on the patient's
    audit trail."""
    key = load_key_file(load_signing_key, key_file)
    with deciding(home) as client:
        result = submit(client, key, "record.review", BreakGlassReview(event, finding))
    emit(
        result,
        as_json,
        lambda reviewed: f"break-glass read {event.hex()} reviewed {finding} at height {reviewed['height']}",
    )


@record.command("show")
@HOME_OPTION
@JSON_OPTION
@RECORD_OPTION
def record_show(home: Path, as_json: bool, record_id: bytes) -> None:
    """Show a record's anchor: patient, category, writer, ciphertext digest, custodians, erasure. Never its content."""
    with node(home) as client:
        result = client.call("record.get", record_id=record_id.hex())
    emit(result, as_json, human_record)


RECORD_COMMANDS = [record]
