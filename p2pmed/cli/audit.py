"""The ``p2pmed audit`` and ``p2pmed fhir`` commands: the audit trail, and checking a FHIR
resource before it is imported. Reads, output and exit codes as in ``p2pmed.cli.signing``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, EXIT_VIOLATION, HOME_OPTION, JSON_OPTION, emit, fail, node, utc_time
from p2pmed.cli.signing import (
    FHIR_REFS_OPTION,
    FHIR_RELEASE_OPTION,
    ID,
    UtcTime,
    fhir_bundle,
    read_fhir,
    read_options,
    short_id,
)

__all__ = ["AUDIT_COMMANDS"]


# -- human output -----------------------------------------------------------------------------


def human_entry(entry: dict[str, Any]) -> str:
    mark = "!" if entry["kind"] in ("break-glass", "record-read-refused") else " "
    record = f" record {short_id(entry['record_id'])}" if entry["record_id"] else ""
    facts = " ".join(part for part in (entry["category"], entry["purpose"], entry["detail"]) if part)
    return (
        f"{mark} {utc_time(entry['time_ms'])} h{entry['height']:<7} {entry['kind']:<19} by "
        f"{short_id(entry['actor'])}{record}  {facts}"
    )


def human_audit(result: dict[str, Any]) -> str:
    lines = [human_entry(entry) for entry in result["entries"]]
    count = len(result["entries"])
    lines.append(f"{count} entr{'y' if count == 1 else 'ies'} for {result['by']} {result['subject']}")
    return "\n".join(lines)


# -- audit -----------------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """The audit trail: every consent change, record write, read, break-glass and erasure."""


@audit.command("show")
@read_options
@click.option("--patient", type=ID, default=None, help="Entries about this patient.")
@click.option("--actor", type=ID, default=None, help="Entries by this person or organisation.")
@click.option("--record", type=ID, default=None, help="Entries about this record.")
@click.option("--since", type=UtcTime(), default=None, help="From this time (UTC) on.")
@click.option("--until", type=UtcTime(), default=None, help="Before this time (UTC).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--fhir", is_flag=True, help="Print a FHIR R5 Bundle of AuditEvent resources.")
def audit_show(
    home: Path,
    as_json: bool,
    patient: bytes | None,
    actor: bytes | None,
    record: bytes | None,
    since: int | None,
    until: int | None,
    limit: int,
    fhir: bool,
) -> None:
    """Show audit entries, oldest first, for exactly one of --patient, --actor, --record.
    Break-glass reads are marked with "!"."""
    chosen = [
        (by, subject)
        for by, subject in (("patient", patient), ("actor", actor), ("record", record))
        if subject is not None
    ]
    if len(chosen) != 1:
        fail("give exactly one of --patient, --actor, --record", EXIT_BAD_INPUT)
    by, subject = chosen[0]
    with node(home) as client:
        result = client.call(
            "audit.query",
            by=by,
            subject=subject.hex(),
            since_ms=since,
            until_ms=until,
            limit=limit,
            format="fhir" if fhir else "entries",
        )
    if fhir:
        click.echo(json.dumps(fhir_bundle(result["entries"]), indent=2))
    else:
        emit(result, as_json, human_audit)


# -- the site's own audit log ---------------------------------------------------------------------


def human_site_entry(entry: dict[str, Any]) -> str:
    fields = entry["fields"]
    mark = "!" if entry["kind"] in ("custody-refused", "suppressed", "log-recovered") else " "
    facts = "  ".join(
        f"{name}={short_id(value) if isinstance(value, str) and len(value) == 64 else value}"
        for name, value in sorted(fields.items())
        if value is not None and name != "reason"
    )
    reason = f"  reason: {fields['reason']}" if fields.get("reason") else ""
    return f"{mark} {utc_time(entry['time_ms'], 'milliseconds')} {entry['kind']:<15} {facts}{reason}"


def human_site_audit(result: dict[str, Any]) -> str:
    lines = [human_site_entry(entry) for entry in result["entries"]]
    count = len(result["entries"])
    lines.append(f"{count} entr{'y' if count == 1 else 'ies'} in the audit log of site {result['site']}")
    return "\n".join(lines)


@audit.command("site")
@read_options
@click.option("--since", type=UtcTime(), default=None, help="Entries written from this time (UTC) on.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--fhir", is_flag=True, help="Print a FHIR R5 Bundle of AuditEvent resources.")
def audit_site(home: Path, as_json: bool, since: int | None, limit: int, fhir: bool) -> None:
    """Show this site's own audit log, oldest first: requests its custodian refused and reads
    of a patient's audit trail through its node (refusals are marked with "!"). Verify the
    files with `p2pmed audit site-verify`."""
    with node(home) as client:
        result = client.call("site.audit", since_ms=since or 0, limit=limit, format="fhir" if fhir else "entries")
    if fhir:
        click.echo(json.dumps(fhir_bundle(result["entries"]), indent=2))
    else:
        emit(result, as_json, human_site_audit)


def _site_of(home: Path) -> tuple[bytes, str]:
    """The site key (the genesis validator with the home's moniker) and chain id of ``home``,
    read without its private key; exits 2 if they cannot be."""
    from p2pmed.site.config import ConfigError, load_config
    from p2pmed.site.genesis import GenesisError, load_genesis
    from p2pmed.site.home import CONFIG, GENESIS

    try:
        moniker = load_config(home / CONFIG).moniker
        genesis = load_genesis(home / GENESIS)
    except (ConfigError, GenesisError) as error:
        fail(str(error), EXIT_BAD_INPUT)
    keys = [validator.public_key for validator in genesis.validators if validator.moniker == moniker]
    if len(keys) != 1:
        fail(f"{home / GENESIS} lists {len(keys)} validators named {moniker!r}; give --key", EXIT_BAD_INPUT)
    return keys[0], genesis.chain_id


@audit.command("site-verify")
@click.option(
    "--home",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="P2PMED_HOME",
    default=None,
    help="The node's home: its log, and its key and chain id from genesis.json [env: P2PMED_HOME].",
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="The log file (its rotated files beside it) [default: <home>/data/site-audit.log].",
)
@click.option("--key", type=ID, default=None, help="The site's public key, as known from elsewhere.")
@click.option("--chain-id", default=None, help="The network's chain id.")
@JSON_OPTION
def audit_site_verify(
    home: Path | None, log_path: Path | None, key: bytes | None, chain_id: str | None, as_json: bool
) -> None:
    """Verify a site's audit log offline, no node needed: every entry signed by the site's key,
    each naming the hash of the one before, across rotated files. Exit 1 naming the first
    entry altered, removed or moved; an unfinished last line (a crash) is reported, not failed."""
    from p2pmed.node.site_audit import LOG_FILE
    from p2pmed.site.home import DATA
    from p2pmed.store.audit_log import log_files, verify_log

    if home is None and (log_path is None or key is None or chain_id is None):
        fail("give --home, or all of --log, --key and --chain-id", EXIT_BAD_INPUT)
    if home is not None and (key is None or chain_id is None):
        home_key, home_chain = _site_of(home)
        key, chain_id = key or home_key, chain_id or home_chain
    assert key is not None and chain_id is not None
    path = log_path or (home / DATA / LOG_FILE if home is not None else Path())
    if not log_files(path):
        fail(f"{path}: no site audit log there", EXIT_BAD_INPUT)
    try:
        verification = verify_log(path, key, chain_id)
    except OSError as error:
        fail(f"{path}: {error.strerror}", EXIT_BAD_INPUT)
    result = {
        "ok": verification.ok,
        "entries": verification.entries,
        "files": list(verification.files),
        "head_sha256": verification.head_sha256,
        "problem": None if verification.problem is None else str(verification.problem),
        "torn_tail": None if verification.torn_tail is None else str(verification.torn_tail),
        "pruned_before": verification.pruned_before,
    }
    emit(result, as_json, human_verification)
    if not verification.ok:
        sys.exit(EXIT_VIOLATION)


def human_verification(result: dict[str, Any]) -> str:
    lines = [
        f"{'verified' if result['ok'] else 'NOT VERIFIED'}: {result['entries']} entries check out"
        f" in {', '.join(result['files'])}; head {result['head_sha256']}"
    ]
    if result["problem"]:
        lines.append(f"first bad entry: {result['problem']}")
    if result["torn_tail"]:
        lines.append(f"unfinished last line (the site stopped while writing): {result['torn_tail']}")
    if result["pruned_before"]:
        lines.append("the oldest file continues one removed by the size cap: what came before is not checked")
    return "\n".join(lines)


# -- fhir --------------------------------------------------------------------------------------------


@click.group()
def fhir() -> None:
    """FHIR interop: check a resource before it is imported."""


@fhir.command("import-check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@FHIR_RELEASE_OPTION
@FHIR_REFS_OPTION
@JSON_OPTION
def fhir_import_check(file: Path, release: str, refs: tuple[tuple[str, bytes], ...], as_json: bool) -> None:
    """Check a FHIR JSON resource (Patient, Observation, Condition, MedicationRequest, Consent)
    and show what p2pmed would make of it. Exit 2, naming the path, if it would refuse it."""
    from p2pmed.interop.fhir import ClinicalData, PatientData

    imported = read_fhir(file, release, dict(refs))
    if isinstance(imported, PatientData):
        result: dict[str, Any] = {"kind": "patient", "bytes": len(imported.content)}
    elif isinstance(imported, ClinicalData):
        result = {
            "kind": "record",
            "resource_type": imported.resource_type,
            "patient": imported.patient.hex(),
            "category": imported.category,
            "bytes": len(imported.content),
        }
    else:
        result = {
            "kind": "consent",
            "transactions": [
                {"type": tx.tx_type, "provision": tx.path, **plain_body(tx.body)} for tx in imported.transactions
            ],
        }
    emit(result, as_json, human_import)


def plain_body(body: Any) -> dict[str, Any]:
    """A consent grant's or deny's fields as JSON: bytes as hex, ``grantee`` empty for everyone."""
    return {name: value.hex() if isinstance(value, bytes) else value for name, value in vars(body).items()}


def human_consent_tx(tx: dict[str, Any]) -> str:
    """One line for a ``consent.grant`` or ``consent.deny`` body, as ``plain_body`` gives it."""
    verb, whom = (
        ("grant to", tx["grantee"]) if tx["type"] == "consent.grant" else ("deny of", tx["grantee"] or "everyone")
    )
    return (
        f"{tx['type']} by patient {tx['patient']}: {verb} {whom}: {', '.join(tx['categories'])}"
        f" for {', '.join(tx['purposes'])} until {utc_time(tx['expires_ms'])}"
    )


def human_import(result: dict[str, Any]) -> str:
    if result["kind"] == "patient":
        return f"Patient: valid; kept at the site ({result['bytes']} bytes), never on the ledger"
    if result["kind"] == "record":
        return (
            f"{result['resource_type']}: valid; a {result['category']} record of patient {result['patient']}"
            f" ({result['bytes']} bytes to encrypt)"
        )
    lines = [f"Consent: valid; {len(result['transactions'])} transaction(s)"]
    lines += [f"  {tx['provision']}: {human_consent_tx(tx)}" for tx in result["transactions"]]
    return "\n".join(lines)


@click.command()
@HOME_OPTION
@JSON_OPTION
@click.option("--patient", type=ID, required=True, help="The patient's person id.")
@click.option("--count", type=click.IntRange(1), default=None, help="Stop after COUNT notices [default: until Ctrl-C].")
def notices(home: Path, as_json: bool, patient: bytes, count: int | None) -> None:
    """Follow a patient's notices as blocks commit: records written, read or refused, the glass
    broken ("!"), consents changed. One line each (JSON lines with --json)."""
    shown = 0
    try:
        with node(home) as client, client.subscribe("notices.subscribe", patient=patient.hex()) as feed:
            while count is None or shown < count:
                try:
                    entry = next(feed)
                except StopIteration:
                    fail("the node ended the notices subscription")
                click.echo(json.dumps(entry) if as_json else human_entry(entry))
                shown += 1
    except KeyboardInterrupt:
        pass


AUDIT_COMMANDS = [audit, fhir, notices]
