"""The ``p2pmed device`` commands: the device registry, batches of readings, reading proofs.

An organisation registers and revokes the devices it operates (``register``, ``revoke``,
signed with its key). A device, or a gateway of the same organisation, sends a batch of
readings from a FHIR Observation or Bundle (``send``, signed with the device's or the
gateway's key): sealed here as the patient's record, anchored with its Merkle root. A
consented reader reads a batch back as a FHIR Bundle of Observations (``read``), or proves
one reading (``prove``) in a JSON document that anyone checks offline, with no node
(``verify``). ``show`` prints a device, as ledger fields or a FHIR Device.

Readings are health data: ``read`` and ``prove`` print them, or write them to a new file
of mode 0600 (``--out``), and nothing else echoes them. Exit codes as in
``p2pmed.cli.record``: 0 done; 1 the node is not running, the ledger refused (the reason
is printed) or a proof does not check; 2 bad input, found before the node is asked.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from p2pmed import strict_json
from p2pmed.cli.common import EXIT_BAD_INPUT, HOME_OPTION, JSON_OPTION, emit, fail, node, utc_time
from p2pmed.cli.record import check_new_file, deciding, load_key_file, write_private
from p2pmed.cli.signing import (
    FHIR_REFS_OPTION,
    ID,
    KEY_OPTION,
    SIGNER_PROTECTION_OPTIONS,
    HexBytes,
    load_key,
    read_options,
    refuse_if_rejected,
    short_id,
    submit_signed,
    write_options,
)
from p2pmed.client.devices import (
    BatchMismatch,
    anchor_state_proof,
    prove_reading,
    read_batch,
    send_batch,
    verify_reading_proof,
)
from p2pmed.consensus.state_proof import ProofRefused
from p2pmed.crypto import PUBLIC_KEY_SIZE, load_encryption_key, load_signing_key
from p2pmed.interop.fhir import IMPORT_SIZE_MAX, FhirError
from p2pmed.interop.fhir_devices import import_readings, import_udi, readings_bundle
from p2pmed.ledger.contracts.consent import CATEGORIES, PURPOSES
from p2pmed.ledger.contracts.devices import ROLES, DeviceRegister, DeviceRevoke, udi_problem, udi_text

__all__ = ["DEVICE_COMMANDS"]

F = TypeVar("F", bound=Callable[..., Any])
PROOF_FILE_SIZE_MAX = 4 << 20
PROOF_DEPTH_MAX = 40


def _udi_options(command: F) -> F:
    command = click.option("--serial", default=None, help="The device's serial number (GS1 AI 21).")(command)
    return click.option("--gtin", default=None, help="The device's GTIN-14 (its UDI device identifier).")(command)


def _read_bytes(path: Path, size_max: int) -> bytes:
    try:
        with path.open("rb") as source:
            return source.read(size_max + 1)
    except OSError as error:
        fail(f"{path}: {error.strerror}", EXIT_BAD_INPUT)


def _udi(gtin: str | None, serial: str | None, fhir_file: Path | None = None) -> tuple[str, str]:
    """The UDI from ``--gtin`` and ``--serial``, or from a FHIR Device; a bad one exits 2."""
    if fhir_file is not None:
        if gtin is not None or serial is not None:
            fail("give --gtin and --serial, or --fhir FILE, not both", EXIT_BAD_INPUT)
        try:
            return import_udi(_read_bytes(fhir_file, IMPORT_SIZE_MAX))
        except FhirError as error:
            fail(f"{fhir_file}: {error}", EXIT_BAD_INPUT)
    if gtin is None or serial is None:
        fail("name the device: --gtin GTIN --serial SERIAL", EXIT_BAD_INPUT)
    problem = udi_problem(gtin, serial)
    if problem is not None:
        fail(problem, EXIT_BAD_INPUT)
    return gtin, serial


def _encryption_key_option(command: F) -> F:
    return click.option(
        "--encryption-key",
        "encryption_key_file",
        type=click.Path(path_type=Path, dir_okay=False),
        required=True,
        help="The reader's encryption key file (from p2pmed identity keys): the key shares open with it.",
    )(command)


def _batch_read_options(command: F) -> F:
    for option in reversed(
        (
            HOME_OPTION,
            KEY_OPTION,
            SIGNER_PROTECTION_OPTIONS,
            _encryption_key_option,
            _udi_options,
            click.option("--batch", "sequence", type=click.IntRange(1), required=True, help="The batch number."),
            click.option(
                "--purpose",
                type=click.Choice(sorted(PURPOSES)),
                default="TREAT",
                show_default=True,
                help="HL7 purpose of use; a consent is for one.",
            ),
            click.option(
                "--out",
                type=click.Path(path_type=Path, dir_okay=False),
                default=None,
                help="Write to this new file (mode 0600) instead of printing.",
            ),
        )
    ):
        command = option(command)
    return command


def _deliver(document: dict[str, Any], out: Path | None, what: str) -> None:
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        write_private(out, text.encode())
    except OSError as error:
        fail(f"{out}: {error.strerror}")
    click.echo(f"wrote {what} to {out}")


def human_device(shown: dict[str, Any]) -> str:
    state = "in force" if shown["active"] else f"REVOKED at {utc_time(shown['revoked_ms'])}"
    lines = [
        f"device {shown['udi']}  {shown['role']}, {state}",
        f"  key          {shown['key']}",
        f"  operated by  {shown['organisation']}",
        f"  registered   {utc_time(shown['registered_ms'])}",
        f"  batches      {shown['batches']}",
    ]
    if shown["patient"]:
        lines.append(f"  patient      {shown['patient']} (only)")
    return "\n".join(lines)


@click.group()
def device() -> None:
    """Medical devices: register and revoke them, send batches of readings, read and prove readings."""


@device.command("register")
@write_options
@_udi_options
@click.option(
    "--fhir",
    "fhir_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Or take the UDI from a FHIR R5 Device (its GS1 udiCarrier).",
)
@click.option(
    "--device-key",
    type=HexBytes(PUBLIC_KEY_SIZE),
    required=True,
    help="The device's Ed25519 public key (hex), never used by anyone before.",
)
@click.option("--role", type=click.Choice(sorted(ROLES)), default="device", show_default=True)
@click.option("--patient", type=ID, default=None, help="Bind the device to this one patient (a home device).")
def device_register(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    gtin: str | None,
    serial: str | None,
    fhir_file: Path | None,
    device_key: bytes,
    role: str,
    patient: bytes | None,
) -> None:
    """Register a device the signing organisation operates, with the device's own key."""
    gtin, serial = _udi(gtin, serial, fhir_file)
    key = load_key(key_file)
    body = DeviceRegister(gtin, serial, device_key, role, patient or b"")
    with node(home) as client:
        result = submit_signed(client, key, "device.register", body, wait, timeout)
    emit(result, as_json, lambda shown: f"device.register of {udi_text(gtin, serial)} {shown['status']}")
    if wait:
        refuse_if_rejected(result, "device.register")


@device.command("revoke")
@write_options
@_udi_options
def device_revoke(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, gtin: str | None, serial: str | None
) -> None:
    """Revoke a device, signed by the organisation that operates it: its key counts for nothing from then on."""
    gtin, serial = _udi(gtin, serial)
    key = load_key(key_file)
    with node(home) as client:
        result = submit_signed(client, key, "device.revoke", DeviceRevoke(gtin, serial), wait, timeout)
    emit(result, as_json, lambda shown: f"device.revoke of {udi_text(gtin, serial)} {shown['status']}")
    if wait:
        refuse_if_rejected(result, "device.revoke")


@device.command("show")
@read_options
@click.argument("gtin")
@click.argument("serial")
@click.option("--fhir", is_flag=True, help="Print it as a FHIR R5 Device.")
def device_show(home: Path, as_json: bool, gtin: str, serial: str, fhir: bool) -> None:
    """Show a registered device: key, organisation, role, batches sent, revocation."""
    gtin, serial = _udi(gtin, serial)
    with node(home) as client:
        shown = client.call("device.get", gtin=gtin, serial=serial, format="fhir" if fhir else "entries")
    emit(shown, as_json or fhir, human_device)


@device.command("send")
@HOME_OPTION
@JSON_OPTION
@KEY_OPTION
@SIGNER_PROTECTION_OPTIONS
@_udi_options
@click.option(
    "--fhir",
    "fhir_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The readings: a FHIR R5 Observation or a Bundle of them, of one patient and category.",
)
@click.option(
    "--category",
    type=click.Choice(sorted(CATEGORIES)),
    default=None,
    help="The data category of readings that code none (else the one their LOINC code implies).",
)
@FHIR_REFS_OPTION
def device_send(
    home: Path,
    as_json: bool,
    key_file: Path,
    gtin: str | None,
    serial: str | None,
    fhir_file: Path,
    category: str | None,
    refs: tuple[tuple[str, bytes], ...],
) -> None:
    """Send a batch of readings, signed by the device or a gateway of its organisation: sealed here as the patient's
    record, anchored with the readings' Merkle root, handed to the custodians. Prints the batch number."""
    gtin, serial = _udi(gtin, serial)
    try:
        readings = import_readings(_read_bytes(fhir_file, IMPORT_SIZE_MAX), gtin, serial, dict(refs), category or "")
    except FhirError as error:
        fail(f"{fhir_file}: {error}", EXIT_BAD_INPUT)
    key = load_key_file(load_signing_key, key_file)
    with deciding(home) as client:
        try:
            sent = send_batch(client, key, gtin, serial, readings)
        except ValueError as error:
            fail(str(error), EXIT_BAD_INPUT)
    result = {
        "udi": udi_text(gtin, serial),
        "batch": sent.sequence,
        "readings": len(readings.observations),
        "readings_root": sent.readings_root.hex(),
        "record_id": sent.record_id.hex(),
        "height": sent.height,
        "stored": list(sent.stored),
        "failed": sent.failed,
    }
    emit(
        result,
        as_json,
        lambda shown: (
            f"batch {shown['batch']} of {shown['udi']}: {shown['readings']} readings, record"
            f" {short_id(shown['record_id'])} at height {shown['height']}"
        ),
    )


@device.command("read")
@_batch_read_options
def device_read(
    home: Path,
    key_file: Path,
    encryption_key_file: Path,
    gtin: str | None,
    serial: str | None,
    sequence: int,
    purpose: str,
    out: Path | None,
) -> None:
    """Read a batch as a FHIR Bundle of Observations: the read is a transaction the ledger decides (the patient's
    consent) and audits; the readings are checked against the anchored Merkle root."""
    gtin, serial = _udi(gtin, serial)
    key = load_key_file(load_signing_key, key_file)
    encryption_key = load_key_file(load_encryption_key, encryption_key_file)
    check_new_file(out)
    with deciding(home) as client:
        try:
            batch, _anchor = read_batch(client, key, encryption_key, gtin, serial, sequence, purpose)
        except BatchMismatch as error:
            fail(str(error))
    bundle = readings_bundle([reading.observation for reading in batch.readings])
    _deliver(bundle, out, f"batch {sequence} of {udi_text(gtin, serial)}")


@device.command("prove")
@_batch_read_options
@click.option("--reading", "index", type=click.IntRange(0), required=True, help="The reading's index in the batch.")
@click.option("--no-state-proof", is_flag=True, help="Leave out the proof of the anchor to a certified block.")
def device_prove(
    home: Path,
    key_file: Path,
    encryption_key_file: Path,
    gtin: str | None,
    serial: str | None,
    sequence: int,
    purpose: str,
    out: Path | None,
    index: int,
    no_state_proof: bool,
) -> None:
    """Prove one reading of a batch: the reading, its Merkle inclusion proof and the state proof of the batch
    anchor, as a JSON document p2pmed device verify checks with no node. Reading the batch is on the ledger."""
    gtin, serial = _udi(gtin, serial)
    key = load_key_file(load_signing_key, key_file)
    encryption_key = load_key_file(load_encryption_key, encryption_key_file)
    check_new_file(out)
    with deciding(home) as client:
        try:
            batch, anchor = read_batch(client, key, encryption_key, gtin, serial, sequence, purpose)
        except BatchMismatch as error:
            fail(str(error))
        if index >= len(batch.readings):
            fail(f"batch {sequence} has {len(batch.readings)} readings: --reading is 0..{len(batch.readings) - 1}")
        state_proof = None if no_state_proof else anchor_state_proof(client, anchor)
        chain_id = client.call("node.status")["chain_id"]
    _deliver(prove_reading(batch, index, chain_id, state_proof), out, f"the proof of reading {index}")


def human_verified(shown: dict[str, Any]) -> str:
    line = f"OK: reading {shown['index']} of batch {shown['batch']} of device {shown['udi']} is in the anchored batch"
    if shown["certified_height"] is None:
        return line + " (no state proof: the Merkle root is as the document says)"
    return (
        f"{line},\n  anchored in a state certified by block {shown['certified_height']} of epoch {shown['epoch']},"
        " signed by a quorum of these validators (compare them with your own view of the chain):\n"
        + "\n".join(f"  {key}" for key in shown["validators"])
    )


@device.command("verify")
@JSON_OPTION
@click.argument("proof_file", type=click.Path(path_type=Path, dir_okay=False))
def device_verify(as_json: bool, proof_file: Path) -> None:
    """Check a reading proof offline: the reading leads to the batch's Merkle root, and (with a state proof) the
    anchor holding that root is in a state certified by a quorum of validators. Exit 1 if it does not check."""
    data = _read_bytes(proof_file, PROOF_FILE_SIZE_MAX)
    if len(data) > PROOF_FILE_SIZE_MAX:
        fail(f"{proof_file}: more than {PROOF_FILE_SIZE_MAX} bytes: not a reading proof", EXIT_BAD_INPUT)
    try:
        document = strict_json.loads(data, PROOF_DEPTH_MAX)
    except strict_json.JsonProblem as problem:
        fail(f"{proof_file}: {problem}", EXIT_BAD_INPUT)
    try:
        verified = verify_reading_proof(document)
    except ProofRefused as refused:
        fail(f"{proof_file}: the proof does not check: {refused}")
    shown = {
        "udi": verified.udi,
        "batch": verified.sequence,
        "index": verified.index,
        "certified_height": verified.certified_height,
        "epoch": verified.epoch,
        "validators": list(verified.validators),
        "observation": verified.observation,
    }
    emit(shown, as_json, human_verified)


DEVICE_COMMANDS = [device]
