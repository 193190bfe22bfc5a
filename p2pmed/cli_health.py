"""The ``p2pmed`` commands for the healthcare ledger: ``identity``, ``consent``, ``audit``,
``trial``, ``supply`` and ``fhir``.

Reads call the node's RPC methods (see docs/operators.md). Writes are signed here, on
the client, with the key in ``--key FILE`` (an Ed25519 PEM: a person's or a site's; it
never leaves this machine): the nonce comes from ``account.nonce``, the transaction
goes out with ``tx.submit``, and ``--wait`` polls ``tx.get`` until the ledger has
decided. A refusal, whether at submission or in the block, prints the ledger's reason
and exits 1.

Output is for people by default and JSON with ``--json``. Exit codes as in
``p2pmed.cli_client``: 0 done, 1 the node is not running or refused, 2 bad input on
the command line. Ids, keys and digests are hex on the command line; a date alone
(``2030-06-30``) given as an expiry means the end of that day, UTC.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from p2pmed.cli_client import human_tx
from p2pmed.cli_common import EXIT_BAD_INPUT, EXIT_FAILURE, HOME_OPTION, JSON_OPTION, emit, fail, node, utc_time
from p2pmed.crypto import (
    EncryptionPrivateKey,
    EncryptionPublicKey,
    Kem,
    KeyFileError,
    SigningKey,
    load_signing_key,
    save_encryption_key,
    save_signing_key,
)
from p2pmed.ledger.contracts import consent as consent_rules
from p2pmed.ledger.contracts import identity as identity_rules
from p2pmed.ledger.contracts import supply as supply_rules
from p2pmed.ledger.contracts import trials as trial_rules
from p2pmed.tx_client import sign_next, wait_decided
from p2pmed.rpc.client import RpcClient, RpcError

__all__ = ["HEALTH_COMMANDS", "ID", "KEY_OPTION", "HexBytes", "NamedParty", "UtcTime", "refuse_if_rejected", "submit_signed"]

ID_SIZE = 32
SIGNING_KEY_FILE = "signing_key.pem"
ENCRYPTION_KEY_FILE = "encryption_key"


# -- parameter types ---------------------------------------------------------------------


class HexBytes(click.ParamType):
    """Hex on the command line, bytes for the command; ``size`` bytes exactly unless None."""

    name = "HEX"

    def __init__(self, size: int | None = ID_SIZE) -> None:
        self.size = size

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> bytes:
        if isinstance(value, bytes):
            return value
        try:
            data = bytes.fromhex(value)
        except ValueError:
            self.fail(f"{value[:80]!r} is not hex", param, ctx)
        if self.size is not None and len(data) != self.size:
            self.fail(f"must be {2 * self.size} hex digits, got {len(value)}", param, ctx)
        return data


class UtcTime(click.ParamType):
    """An ISO 8601 date or date and time (UTC unless it says otherwise), as milliseconds since 1970.

    A date alone is the start of that day, or with ``end_of_day`` the end of it, so that
    ``--expires 2030-06-30`` holds through the 30th."""

    name = "DATE|DATETIME"

    def __init__(self, end_of_day: bool = False) -> None:
        self.end_of_day = end_of_day

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            moment = self._moment(value)
        except (ValueError, OverflowError):
            self.fail(f"{value[:40]!r} is not a date (2030-06-30) or a date and time (2030-06-30T12:00Z)", param, ctx)
        return (moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)) // datetime.timedelta(milliseconds=1)

    def _moment(self, value: str) -> datetime.datetime:
        try:
            day = datetime.date.fromisoformat(value)
        except ValueError:
            moment = datetime.datetime.fromisoformat(value)
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)
        start = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.UTC)
        return start + datetime.timedelta(days=1) if self.end_of_day else start


ID = HexBytes()
KEY_OPTION = click.option("--key", "key_file", type=click.Path(path_type=Path, dir_okay=False), required=True,
                          help="The signer's Ed25519 private key (PEM, mode 0600).")
WAIT_OPTION = click.option("--wait", is_flag=True, help="Wait until the transaction is in a block; exit 1 if the ledger refused it.")
TIMEOUT_OPTION = click.option("--timeout", type=click.FloatRange(0.1), default=60.0, show_default=True,
                              help="Seconds --wait waits for the block.")
KEM_OPTION = click.option("--kem", type=click.Choice([kem.value for kem in Kem]), default=Kem.X25519.value, show_default=True,
                          help="The encryption key's algorithm.")


def _write_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every signing command takes."""
    for option in reversed((HOME_OPTION, JSON_OPTION, KEY_OPTION, WAIT_OPTION, TIMEOUT_OPTION)):
        command = option(command)
    return command


def _read_options(command: Callable[..., Any]) -> Callable[..., Any]:
    return HOME_OPTION(JSON_OPTION(command))


# -- talking to the node -----------------------------------------------------------------


def _read(home: Path, as_json: bool, human: Callable[[Any], str], method: str, **params: Any) -> None:
    with node(home) as client:
        result = client.call(method, **params)
    emit(result, as_json, human)


def _load_key(path: Path) -> SigningKey:
    try:
        return load_signing_key(path)
    except KeyFileError as error:
        fail(str(error), EXIT_BAD_INPUT)


def submit_signed(
    client: RpcClient, key: SigningKey, tx_type: str, body: Any, wait: bool, timeout_s: float, where: str = ""
) -> dict[str, Any]:
    """Sign ``body`` as a ``tx_type`` transaction with the sender's next nonce and submit it;
    with ``wait``, return ``tx.get``'s answer once it is committed or rejected. A refusal
    at submission exits 1 with the reason, prefixed by ``where`` the transaction came from."""
    prefix = f"{where}: " if where else ""
    tx = sign_next(client, key, tx_type, body)
    try:
        submitted: dict[str, Any] = client.call("tx.submit", tx=tx.encoded.hex())
    except RpcError as error:
        reason = error.data.get("reason") if isinstance(error.data, dict) else None
        fail(f"{prefix}the node refused {tx_type}: {error.message}" + (f" [{reason}]" if reason else ""))
    if not wait:
        return submitted
    result = wait_decided(client, tx, timeout_s)
    if result is None:
        fail(f"{prefix}{tx_type} {tx.id.hex()} is still pending after {timeout_s:g} s; see later: p2pmed tx get {tx.id.hex()}")
    return result


def refuse_if_rejected(result: dict[str, Any], tx_type: str, where: str = "") -> None:
    """Exit 1 saying why, if the ledger refused the transaction ``result`` describes."""
    if result["status"] == "rejected":
        detail = f": {result['detail']}" if result["detail"] else ""
        fail(f"{where + ': ' if where else ''}the ledger refused {tx_type} ({result['reason']}){detail}")


def _submit(home: Path, as_json: bool, key: SigningKey, wait: bool, timeout_s: float, tx_type: str, body: Any) -> None:
    with node(home) as client:
        result = submit_signed(client, key, tx_type, body, wait, timeout_s)
    emit(result, as_json, human_tx)
    refuse_if_rejected(result, tx_type)


# -- human output -----------------------------------------------------------------------------


def _short(hex_id: str) -> str:
    return f"{hex_id[:16]}…"


def human_person(result: dict[str, Any]) -> str:
    state = "in force" if result["active"] else "REVOKED"
    return (f"person {result['id']}  {result['role']}, {state}\n"
            f"  registered by {result['organisation']}\n"
            f"  signing key    {result['key']}\n"
            f"  encryption key {result['encryption_key']['key']} ({result['encryption_key']['kem']})")


def human_organisation(result: dict[str, Any]) -> str:
    return (f"{result['name']} ({result['kind']}), in force since height {result['since_height']}\n"
            f"  key            {result['key']}\n"
            f"  encryption key {result['encryption_key']['key']} ({result['encryption_key']['kem']})")


def human_consents(result: dict[str, Any]) -> str:
    lines = [f"patient {result['patient']} at {utc_time(result['time_ms'])} (the latest block)"]
    for consent in result["consents"]:
        lines.append(f"  {consent['category']:<13} to {consent['grantee']} for {consent['purpose']}"
                     f" until {utc_time(consent['expires_ms'])} (granted by {_short(consent['granted_by'])})")
    if not result["consents"]:
        lines.append("  no consent in force")
    if result["truncated"]:
        lines.append("  … more not shown: raise --limit")
    lines += [f"  delegate {delegate['delegate']} until {utc_time(delegate['expires_ms'])}" for delegate in result["delegates"]]
    return "\n".join(lines)


def human_audit(result: dict[str, Any]) -> str:
    lines = []
    for entry in result["entries"]:
        mark = "!" if entry["kind"] == "break-glass" else " "
        record = f" record {_short(entry['record_id'])}" if entry["record_id"] else ""
        facts = " ".join(part for part in (entry["category"], entry["purpose"], entry["detail"]) if part)
        lines.append(f"{mark} {utc_time(entry['time_ms'])} h{entry['height']:<7} {entry['kind']:<18} by {_short(entry['actor'])}{record}  {facts}")
    count = len(result["entries"])
    lines.append(f"{count} entr{'y' if count == 1 else 'ies'} for {result['by']} {result['subject']}")
    return "\n".join(lines)


def human_trial(result: dict[str, Any]) -> str:
    protocol = result["protocol"]
    state = "closed (results anchored)" if result["closed"] else "open"
    lines = [
        f"trial {result['trial_id']}  {state}{'  FLAGGED: outcome switching' if result['flagged'] else ''}",
        f"  sponsor {result['sponsor']}",
        f"  protocol v{result['protocol_version']} sha256 {protocol['sha256']}",
        f"  primary endpoints: {'; '.join(protocol['primary_endpoints'])}",
        f"  secondary endpoints: {'; '.join(protocol['secondary_endpoints']) or '-'}",
        f"  enrolled {result['enrolled']} (withdrawn {result['withdrawn']})",
    ]
    for number, anchored in enumerate(result["results"], start=1):
        switching = anchored["outcome_switching"]
        verdict = switching["summary"] if switching else "endpoints as registered"
        lines.append(f"  result {number}: data set {anchored['dataset_sha256']} at {utc_time(anchored['time_ms'])}: {verdict}")
    return "\n".join(lines)


def human_verification(result: dict[str, Any]) -> str:
    if result["matches"]:
        return f"{result['sha256']} is result {result['result_number']} of trial {result['trial_id']}"
    return f"{result['sha256']} is NOT an anchored result of trial {result['trial_id']}"


def human_flagged(result: dict[str, Any]) -> str:
    lines = [f"{each['trial_id']} (sponsor {_short(each['sponsor'])}): {' '.join(each['switches'])}" for each in result["trials"]]
    return "\n".join(lines) or "no trial is flagged for outcome switching"


def human_trace(result: dict[str, Any]) -> str:
    pack = result["pack"]
    head = (f"pack (01){result['gtin']}(21){result['serial']}: never commissioned" if pack is None else
            f"pack (01){result['gtin']}(21){result['serial']}: {pack['status']}, lot {pack['lot']}, held by {_short(pack['holder'])}")
    lines = [head]
    for event in result["events"]:
        party = f" ↔ {_short(event['party'])}" if event["party"] else ""
        lines.append(f"  {utc_time(event['time_ms'])} h{event['height']:<7} {event['kind']:<13} by {_short(event['organisation'])}{party}  {event['detail']}")
    return "\n".join(lines)


def human_verdict(result: dict[str, Any]) -> str:
    return f"{'OK' if result['dispensable'] else 'DO NOT DISPENSE'}: {result['status']}\n  {result['message']}"


def human_alerts(result: dict[str, Any]) -> str:
    lines = [f"#{alert['index']} {utc_time(alert['time_ms'])} {alert['kind']}: (01){alert['gtin']}(21){alert['serial']}"
             f" by {_short(alert['organisation'])}  {alert['detail']}" for alert in result["alerts"]]
    lines.append(f"{result['count']} alert{'' if result['count'] == 1 else 's'} in all")
    return "\n".join(lines)


# -- identity -----------------------------------------------------------------------------------


@click.group()
def identity() -> None:
    """People and organisations: make keys, register people, vote organisations in, look them up."""


@identity.command("keys")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help=f"Directory for {SIGNING_KEY_FILE} and {ENCRYPTION_KEY_FILE} (created; existing keys are never overwritten).")
@KEM_OPTION
@JSON_OPTION
def identity_keys(out: Path, kem: str, as_json: bool) -> None:
    """Make a person's signing key and encryption key (files of mode 0600) and print their
    public halves, which the registering site needs. The signing key's public half is the
    person's id for life."""
    signing, encryption = SigningKey.generate(), EncryptionPrivateKey.generate(Kem(kem))
    existing = [name for name in (SIGNING_KEY_FILE, ENCRYPTION_KEY_FILE) if (out / name).exists()]
    if existing:
        fail(f"{out / existing[0]}: already exists; refusing to overwrite a key", EXIT_BAD_INPUT)
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        save_signing_key(out / SIGNING_KEY_FILE, signing)
        save_encryption_key(out / ENCRYPTION_KEY_FILE, encryption)
    except (KeyFileError, OSError) as error:
        fail(str(error), EXIT_BAD_INPUT)
    result = {"public_key": signing.public_key.hex(), "kem": kem, "encryption_key": encryption.public_key.key.hex(),
              "signing_key_file": str(out / SIGNING_KEY_FILE), "encryption_key_file": str(out / ENCRYPTION_KEY_FILE)}
    emit(result, as_json, lambda r: (
        f"wrote {r['signing_key_file']} and {r['encryption_key_file']} (keep them secret)\n"
        f"person id / signing key: {r['public_key']}\n"
        f"encryption key ({r['kem']}): {r['encryption_key']}\n"
        f"a site registers this person with:\n  p2pmed identity register-person --public-key {r['public_key']} "
        f"--encryption-key {r['encryption_key']} --kem {r['kem']} --role ROLE --key SITE_KEY"))


def _encryption_key(kem: str, key: bytes) -> EncryptionPublicKey:
    try:
        return EncryptionPublicKey(Kem(kem), key)
    except ValueError as error:
        fail(f"--encryption-key: {error}", EXIT_BAD_INPUT)


@identity.command("register-person")
@_write_options
@click.option("--public-key", type=ID, required=True, help="The person's Ed25519 public key: their id.")
@click.option("--encryption-key", type=HexBytes(None), required=True, help="The person's public encryption key.")
@KEM_OPTION
@click.option("--role", type=click.Choice(sorted(identity_rules.PERSON_ROLES)), required=True)
def register_person(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float,
                    public_key: bytes, encryption_key: bytes, kem: str, role: str) -> None:
    """Register a person, signed with an organisation's key (--key)."""
    body = identity_rules.PersonRegister(public_key, role, _encryption_key(kem, encryption_key))
    _submit(home, as_json, _load_key(key_file), wait, timeout, "identity.person.register", body)


@identity.command("propose-org")
@_write_options
@click.option("--org-key", type=ID, required=True, help="The organisation's Ed25519 public key.")
@click.option("--name", required=True)
@click.option("--kind", type=click.Choice(sorted(identity_rules.ORGANISATION_KINDS)), required=True)
@click.option("--encryption-key", type=HexBytes(None), required=True, help="The organisation's public encryption key.")
@KEM_OPTION
def propose_org(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float,
                org_key: bytes, name: str, kind: str, encryption_key: bytes, kem: str) -> None:
    """Vote, with a validator's key (--key), to admit an organisation; it is in force once
    2f+1 validators have proposed the same profile."""
    profile = identity_rules.OrganisationProfile(org_key, name, kind, _encryption_key(kem, encryption_key))
    _submit(home, as_json, _load_key(key_file), wait, timeout, "identity.org.propose", identity_rules.OrgProposal(profile))


@identity.command("person")
@_read_options
@click.argument("id_or_key", type=ID)
def identity_person(home: Path, as_json: bool, id_or_key: bytes) -> None:
    """Show a person by id, or by their current signing key."""
    _read(home, as_json, human_person, "identity.person", id_or_key=id_or_key.hex())


@identity.command("org")
@_read_options
@click.argument("key", type=ID)
def identity_org(home: Path, as_json: bool, key: bytes) -> None:
    """Show an organisation in force."""
    _read(home, as_json, human_organisation, "identity.organisation", key=key.hex())


# -- consent ------------------------------------------------------------------------------------


CATEGORY_OPTION = click.option("--category", "categories", type=click.Choice(sorted(consent_rules.CATEGORIES)), multiple=True,
                               required=True, help="A data category; repeat for several.")
PATIENT_OPTION = click.option("--patient", type=ID, default=None,
                              help="The patient's person id [default: the signer's key, when the patient signs].")


@click.group()
def consent() -> None:
    """Patient consent: grant, revoke, name delegates, and see what is in force."""


@consent.command("grant")
@_write_options
@PATIENT_OPTION
@click.option("--grantee", type=ID, required=True, help="A person id or an organisation key.")
@CATEGORY_OPTION
@click.option("--purpose", type=click.Choice(sorted(consent_rules.PURPOSES)), required=True, help="HL7 purpose of use.")
@click.option("--expires", type=UtcTime(end_of_day=True), required=True, help="Last day (UTC), or the moment, it holds.")
def consent_grant(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, patient: bytes | None,
                  grantee: bytes, categories: tuple[str, ...], purpose: str, expires: int) -> None:
    """Grant GRANTEE access to the patient's data of these categories, signed by the patient or a delegate."""
    key = _load_key(key_file)
    body = consent_rules.ConsentGrant(patient or key.public_key, grantee, categories, purpose, expires)
    _submit(home, as_json, key, wait, timeout, "consent.grant", body)


@consent.command("revoke")
@_write_options
@PATIENT_OPTION
@click.option("--grantee", type=ID, required=True)
@CATEGORY_OPTION
def consent_revoke(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, patient: bytes | None,
                   grantee: bytes, categories: tuple[str, ...]) -> None:
    """Revoke consents; they end with the block that orders the revocation."""
    key = _load_key(key_file)
    body = consent_rules.ConsentRevoke(patient or key.public_key, grantee, categories)
    _submit(home, as_json, key, wait, timeout, "consent.revoke", body)


@consent.command("delegate")
@_write_options
@click.option("--delegate", type=ID, required=True, help="A person id or an organisation key.")
@click.option("--expires", type=UtcTime(end_of_day=True), required=True, help="Last day (UTC), or the moment, it holds.")
def consent_delegate(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, delegate: bytes, expires: int) -> None:
    """Name a delegate who may grant and revoke for the patient (signed by the patient)."""
    _submit(home, as_json, _load_key(key_file), wait, timeout, "consent.delegate", consent_rules.ConsentDelegate(delegate, expires))


@consent.command("undelegate")
@_write_options
@click.option("--delegate", type=ID, required=True)
def consent_undelegate(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, delegate: bytes) -> None:
    """Remove a delegate (signed by the patient)."""
    _submit(home, as_json, _load_key(key_file), wait, timeout, "consent.undelegate", consent_rules.ConsentUndelegate(delegate))


@consent.command("show")
@_read_options
@click.argument("patient", type=ID)
@click.option("--fhir", is_flag=True, help="Print the consents as FHIR R5 Consent resources (JSON).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def consent_show(home: Path, as_json: bool, patient: bytes, fhir: bool, limit: int) -> None:
    """Show the consents in force for PATIENT, and their delegates."""
    with node(home) as client:
        result = client.call("consent.list", patient=patient.hex(), limit=limit, format="fhir" if fhir else "entries")
    if fhir:
        click.echo(json.dumps(_bundle(result["consents"]), indent=2))
    else:
        emit(result, as_json, human_consents)


def _bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A FHIR collection Bundle: the form FHIR tools import a set of resources in."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource} for resource in resources]}


# -- audit -----------------------------------------------------------------------------------------


@click.group()
def audit() -> None:
    """The audit trail: every consent change, record write, read, break-glass and erasure."""


@audit.command("show")
@_read_options
@click.option("--patient", type=ID, default=None, help="Entries about this patient.")
@click.option("--actor", type=ID, default=None, help="Entries by this person or organisation.")
@click.option("--record", type=ID, default=None, help="Entries about this record.")
@click.option("--since", type=UtcTime(), default=None, help="From this time (UTC) on.")
@click.option("--until", type=UtcTime(), default=None, help="Before this time (UTC).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--fhir", is_flag=True, help="Print a FHIR R5 Bundle of AuditEvent resources.")
def audit_show(home: Path, as_json: bool, patient: bytes | None, actor: bytes | None, record: bytes | None,
               since: int | None, until: int | None, limit: int, fhir: bool) -> None:
    """Show audit entries, oldest first, for exactly one of --patient, --actor, --record.
    Break-glass reads are marked with "!"."""
    chosen = [(by, subject) for by, subject in (("patient", patient), ("actor", actor), ("record", record)) if subject is not None]
    if len(chosen) != 1:
        fail("give exactly one of --patient, --actor, --record", EXIT_BAD_INPUT)
    by, subject = chosen[0]
    with node(home) as client:
        result = client.call("audit.query", by=by, subject=subject.hex(), since_ms=since, until_ms=until, limit=limit,
                             format="fhir" if fhir else "entries")
    if fhir:
        click.echo(json.dumps(_bundle(result["entries"]), indent=2))
    else:
        emit(result, as_json, human_audit)


# -- trials ----------------------------------------------------------------------------------------


def _digest(file: Path | None, digest: bytes | None, what: str) -> bytes:
    """The SHA-256 of ``file``, or ``digest`` as given: exactly one of them."""
    if (file is None) == (digest is None):
        fail(f"give exactly one of --{what} FILE and --{what}-sha256 HEX", EXIT_BAD_INPUT)
    if digest is not None:
        return digest
    assert file is not None
    try:
        with file.open("rb") as source:
            return hashlib.file_digest(source, "sha256").digest()
    except OSError as error:
        fail(f"{file}: {error.strerror}", EXIT_BAD_INPUT)


def _endpoints(texts: tuple[str, ...]) -> tuple[str, ...]:
    """Endpoints in the normal form the ledger compares (lower case, single spaces)."""
    return tuple(trial_rules.normalise_endpoint(text) for text in texts)


def _protocol_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed((
        click.option("--protocol", type=click.Path(path_type=Path, dir_okay=False), default=None, help="The protocol document."),
        click.option("--protocol-sha256", type=ID, default=None, help="Or its SHA-256."),
        click.option("--primary", multiple=True, required=True, help="A primary endpoint; repeat for several."),
        click.option("--secondary", multiple=True, help="A secondary endpoint; repeat for several."),
        click.option("--planned", type=click.IntRange(1), default=None, help="Planned enrolment (an estimate)."),
    )):
        command = option(command)
    return command


def _protocol(protocol: Path | None, protocol_sha256: bytes | None, primary: tuple[str, ...],
              secondary: tuple[str, ...], planned: int | None) -> trial_rules.Protocol:
    return trial_rules.Protocol(_digest(protocol, protocol_sha256, "protocol"), _endpoints(primary), _endpoints(secondary), planned)


TRIAL_ID = click.argument("trial_id")


@click.group()
def trial() -> None:
    """Clinical trials: register, consent, enrol, anchor results, and check them for outcome switching."""


@trial.command("register")
@_write_options
@TRIAL_ID
@_protocol_options
def trial_register(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, trial_id: str, protocol: Path | None,
                   protocol_sha256: bytes | None, primary: tuple[str, ...], secondary: tuple[str, ...], planned: int | None) -> None:
    """Register TRIAL_ID (e.g. NCT01234567) with its protocol and pre-declared endpoints, signed by the sponsor."""
    body = trial_rules.TrialRegister(trial_id, _protocol(protocol, protocol_sha256, primary, secondary, planned))
    _submit(home, as_json, _load_key(key_file), wait, timeout, "trial.register", body)


@trial.command("amend")
@_write_options
@TRIAL_ID
@_protocol_options
def trial_amend(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, trial_id: str, protocol: Path | None,
                protocol_sha256: bytes | None, primary: tuple[str, ...], secondary: tuple[str, ...], planned: int | None) -> None:
    """Replace the protocol (endpoints are frozen from the first enrolment), signed by the sponsor."""
    body = trial_rules.TrialAmend(trial_id, _protocol(protocol, protocol_sha256, primary, secondary, planned))
    _submit(home, as_json, _load_key(key_file), wait, timeout, "trial.amend", body)


@trial.command("consent")
@_write_options
@TRIAL_ID
def trial_consent(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, trial_id: str) -> None:
    """Give research consent to TRIAL_ID, signed by the patient."""
    _submit(home, as_json, _load_key(key_file), wait, timeout, "trial.consent", trial_rules.TrialConsent(trial_id))


@trial.command("withdraw")
@_write_options
@TRIAL_ID
def trial_withdraw(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, trial_id: str) -> None:
    """Withdraw research consent from TRIAL_ID, signed by the patient."""
    _submit(home, as_json, _load_key(key_file), wait, timeout, "trial.withdraw", trial_rules.TrialWithdraw(trial_id))


@trial.command("enroll")
@_write_options
@TRIAL_ID
@click.option("--person", type=ID, required=True, help="The patient's person id.")
def trial_enroll(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, trial_id: str, person: bytes) -> None:
    """Enrol a consenting patient, signed by the sponsor or a clinician or researcher."""
    _submit(home, as_json, _load_key(key_file), wait, timeout, "trial.enroll", trial_rules.TrialEnroll(trial_id, person))


@trial.command("results")
@_write_options
@TRIAL_ID
@click.option("--dataset", type=click.Path(path_type=Path, dir_okay=False), default=None, help="The result data set.")
@click.option("--dataset-sha256", type=ID, default=None, help="Or its SHA-256.")
@click.option("--primary", multiple=True, help="A primary endpoint reported; repeat for several.")
@click.option("--secondary", multiple=True, help="A secondary endpoint reported; repeat for several.")
def trial_results(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, trial_id: str, dataset: Path | None,
                  dataset_sha256: bytes | None, primary: tuple[str, ...], secondary: tuple[str, ...]) -> None:
    """Anchor results, signed by the sponsor; endpoints that differ from the registration are flagged."""
    body = trial_rules.TrialResults(trial_id, _digest(dataset, dataset_sha256, "dataset"), _endpoints(primary), _endpoints(secondary))
    _submit(home, as_json, _load_key(key_file), wait, timeout, "trial.results", body)


@trial.command("show")
@_read_options
@TRIAL_ID
def trial_show(home: Path, as_json: bool, trial_id: str) -> None:
    """Show a trial: protocol, endpoints, enrolment, results and any outcome switching."""
    _read(home, as_json, human_trial, "trial.get", trial_id=trial_id)


@trial.command("verify")
@_read_options
@TRIAL_ID
@click.option("--dataset", type=click.Path(path_type=Path, dir_okay=False), default=None, help="A data set file.")
@click.option("--dataset-sha256", type=ID, default=None, help="Or its SHA-256.")
def trial_verify(home: Path, as_json: bool, trial_id: str, dataset: Path | None, dataset_sha256: bytes | None) -> None:
    """Is this data set one of TRIAL_ID's anchored results? Exit 1 if not."""
    digest = _digest(dataset, dataset_sha256, "dataset")
    with node(home) as client:
        result = client.call("trial.verify", trial_id=trial_id, sha256=digest.hex())
    emit(result, as_json, human_verification)
    if not result["matches"]:
        sys.exit(EXIT_FAILURE)


@trial.command("flagged")
@_read_options
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def trial_flagged(home: Path, as_json: bool, limit: int) -> None:
    """List trials flagged for outcome switching, most recent first."""
    _read(home, as_json, human_flagged, "trial.flagged", limit=limit)


# -- supply ------------------------------------------------------------------------------------------


class NamedParty(click.ParamType):
    """``NAME=HEX``: a name as an input file writes it (a FHIR reference such as
    ``Patient/123``, an EPCIS party or location id) and the ledger party it stands for."""

    name = "NAME=HEX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, bytes]:
        if isinstance(value, tuple):
            return value
        literal, _, party = value.rpartition("=")
        try:
            key = bytes.fromhex(party)
        except ValueError:
            key = b""
        if not literal or len(key) != ID_SIZE:
            self.fail(f"{value[:80]!r}: expected NAME=HEX, a party's id or key as {2 * ID_SIZE} hex digits", param, ctx)
        return literal, key


class Gs1Code(click.ParamType):
    """A GTIN, lot, serial or expiry, refused here in the ledger's words, before the node is asked."""

    def __init__(self, name: str, problem: Callable[[str], str | None]) -> None:
        self.name, self.problem = name, problem

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        problem = self.problem(value)
        if problem is not None:
            self.fail(problem, param, ctx)
        return str(value)


class PackCode(click.ParamType):
    """A pack as ``GTIN:SERIAL``. A GTIN-14 is digits, so the first colon ends it; a serial may hold colons."""

    name = "GTIN:SERIAL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> supply_rules.PackRef:
        if isinstance(value, supply_rules.PackRef):
            return value
        gtin, _, serial = value.partition(":")
        problem = supply_rules.gtin_problem(gtin) or supply_rules.code_problem(serial, "serial")
        if problem is not None:
            self.fail(f"{value[:80]!r}: {problem}", param, ctx)
        return supply_rules.PackRef(gtin, serial)


GTIN = Gs1Code("GTIN", supply_rules.gtin_problem)
LOT = Gs1Code("LOT", lambda code: supply_rules.code_problem(code, "lot"))
SERIAL = Gs1Code("SERIAL", lambda code: supply_rules.code_problem(code, "serial"))
EXPIRY = Gs1Code("YYYY-MM-DD", supply_rules.expiry_problem)
PACK = PackCode()
PACKS_OPTION = click.option("--pack", "packs", type=PACK, multiple=True, required=True, help="A pack as GTIN:SERIAL; repeat for several.")


@click.group()
def supply() -> None:
    """Drug packs: commission, ship, receive, dispense, decommission, recall and scan them (signed
    by the organisation that acts), import EPCIS events, trace a pack, verify one, read the alerts."""


@supply.command("trace")
@_read_options
@click.argument("gtin")
@click.argument("serial")
def supply_trace(home: Path, as_json: bool, gtin: str, serial: str) -> None:
    """Show a pack's history, from commissioning to dispensing."""
    _read(home, as_json, human_trace, "supply.trace", gtin=gtin, serial=serial)


@supply.command("verify")
@_read_options
@click.argument("gtin")
@click.argument("serial")
@click.option("--at", "organisation", type=ID, default=None, help="The organisation about to dispense it [default: its holder].")
def supply_verify(home: Path, as_json: bool, gtin: str, serial: str, organisation: bytes | None) -> None:
    """Is the pack genuine and dispensable now? Exit 1 if not. Nothing is recorded:
    a scan on the ledger is a supply.verify transaction."""
    with node(home) as client:
        result = client.call("supply.verify", gtin=gtin, serial=serial, organisation=organisation.hex() if organisation else None)
    emit(result, as_json, human_verdict)
    if not result["dispensable"]:
        sys.exit(EXIT_FAILURE)


@supply.command("alerts")
@_read_options
@click.option("--start", type=click.IntRange(0), default=0, show_default=True, help="The first alert to show.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def supply_alerts(home: Path, as_json: bool, start: int, limit: int) -> None:
    """Show supply alerts (suspect counterfeits, packs missing in transit, ...) in the order raised."""
    _read(home, as_json, human_alerts, "supply.alerts", start=start, limit=limit)


@supply.command("commission")
@_write_options
@click.option("--gtin", type=GTIN, required=True, help="The GTIN-14 (the first manufacturer to commission it owns it).")
@click.option("--lot", type=LOT, required=True)
@click.option("--expiry", type=EXPIRY, required=True, help="The lot's expiry date: its packs are dispensed through that day (UTC).")
@click.option("--serial", "serials", type=SERIAL, multiple=True, required=True, help="A serial number; repeat for several (at most 1000).")
def supply_commission(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, gtin: str, lot: str, expiry: str,
                      serials: tuple[str, ...]) -> None:
    """Commission serialised packs of one GTIN and lot, signed by the manufacturer, which then holds them."""
    _submit(home, as_json, _load_key(key_file), wait, timeout, "supply.commission", supply_rules.SupplyCommission(gtin, lot, expiry, serials))


@supply.command("ship")
@_write_options
@click.option("--to", "destination", type=ID, required=True, help="The receiving organisation's key.")
@PACKS_OPTION
def supply_ship(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, destination: bytes,
                packs: tuple[supply_rules.PackRef, ...]) -> None:
    """Ship packs the signer holds to another organisation. The transaction's id is the
    shipment's id, which the destination gives to supply receive."""
    _submit(home, as_json, _load_key(key_file), wait, timeout, "supply.ship", supply_rules.SupplyShip(destination, packs))


@supply.command("receive")
@_write_options
@click.option("--shipment", type=ID, required=True, help="The shipment's id: its supply.ship transaction's id.")
@click.option("--pack", "packs", type=PACK, multiple=True, help="A pack that arrived, as GTIN:SERIAL; repeat.")
@click.option("--missing", type=PACK, multiple=True, help="A pack of the shipment that did not arrive; repeat. Each raises an alert.")
def supply_receive(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, shipment: bytes,
                   packs: tuple[supply_rules.PackRef, ...], missing: tuple[supply_rules.PackRef, ...]) -> None:
    """Receive a shipment, signed by its destination, once. Every pack of it is listed, as
    arrived or missing: a shortfall is declared, never implied."""
    if not packs and not missing:
        fail("list the shipment's packs: --pack for each that arrived, --missing for each that did not", EXIT_BAD_INPUT)
    _submit(home, as_json, _load_key(key_file), wait, timeout, "supply.receive", supply_rules.SupplyReceive(shipment, packs, missing))


@supply.command("dispense")
@_write_options
@PACKS_OPTION
def supply_dispense(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, packs: tuple[supply_rules.PackRef, ...]) -> None:
    """Dispense packs the signer holds (a pharmacy or hospital). The patient is not named: who takes what stays at the pharmacy."""
    _submit(home, as_json, _load_key(key_file), wait, timeout, "supply.dispense", supply_rules.SupplyDispense(packs))


@supply.command("decommission")
@_write_options
@PACKS_OPTION
@click.option("--reason", type=click.Choice(sorted(supply_rules.DECOMMISSION_REASONS)), required=True)
def supply_decommission(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, packs: tuple[supply_rules.PackRef, ...],
                        reason: str) -> None:
    """Take packs the signer holds out of circulation."""
    _submit(home, as_json, _load_key(key_file), wait, timeout, "supply.decommission", supply_rules.SupplyDecommission(packs, reason))


@supply.command("recall")
@_write_options
@click.option("--gtin", type=GTIN, required=True)
@click.option("--lot", type=LOT, default=None, help="Recall this whole lot.")
@click.option("--serial", "serials", type=SERIAL, multiple=True, help="Or these serials; repeat.")
@click.option("--reason", required=True, help="Why, in words a pharmacist reads when a recalled pack is scanned.")
def supply_recall(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, gtin: str, lot: str | None,
                  serials: tuple[str, ...], reason: str) -> None:
    """Recall a lot or listed serials, signed by the GTIN's manufacturer. Recalled packs are
    never dispensed and ship only back to their manufacturer."""
    if (lot is None) == (not serials):
        fail("give exactly one of --lot LOT and --serial SERIAL (repeatable)", EXIT_BAD_INPUT)
    _submit(home, as_json, _load_key(key_file), wait, timeout, "supply.recall", supply_rules.SupplyRecall(gtin, lot, serials, reason))


@supply.command("scan")
@_write_options
@click.argument("pack", type=PACK)
def supply_scan(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, pack: supply_rules.PackRef) -> None:
    """Record a scan of PACK (GTIN:SERIAL) on the ledger, with its verdict at the block's time:
    an alarming one (an unknown serial is a suspect counterfeit) raises an alert. To ask
    without recording, use supply verify."""
    _submit(home, as_json, _load_key(key_file), wait, timeout, "supply.verify", supply_rules.SupplyVerify(pack.gtin, pack.serial))


def _shipment_on_ledger(client: RpcClient) -> Callable[[supply_rules.PackRef], bytes | None]:
    """The EPCIS import's lookup of the shipment a pack is in transit in, from ``supply.trace``."""

    def shipment_of(pack: supply_rules.PackRef) -> bytes | None:
        found = client.call("supply.trace", gtin=pack.gtin, serial=pack.serial)["pack"]
        return bytes.fromhex(found["shipment"]) if found is not None and found["shipment"] else None

    return shipment_of


def _submit_imported(client: RpcClient, key: SigningKey, tx_type: str, body: Any, event: str, timeout_s: float) -> dict[str, Any]:
    """Submit and wait; a refusal names the EPCIS ``event`` the transaction came from."""
    result = submit_signed(client, key, tx_type, body, True, timeout_s, where=event)
    refuse_if_rejected(result, tx_type, where=event)
    return result


@supply.command("import-epcis")
@HOME_OPTION
@JSON_OPTION
@KEY_OPTION
@TIMEOUT_OPTION
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--party", "parties", type=NamedParty(), multiple=True, metavar="ID=HEX",
              help="Map a party or location id of a shipping event's destinationList (a GLN URI) to an organisation key; repeat.")
def supply_import_epcis(home: Path, as_json: bool, key_file: Path, timeout: float, file: Path, parties: tuple[tuple[str, bytes], ...]) -> None:
    """Import an EPCIS 2.0 JSON document of the signer's own ObjectEvents (commissioning,
    shipping, receiving, dispensing, decommissioning): each becomes supply transactions,
    submitted in order, each waited for. The first refusal stops the import, naming its
    event; the transactions before it stay committed. A receipt needs its shipment on the
    ledger, so a shipment is received by a later import, signed by its destination."""
    from p2pmed.interop.epcis import DOCUMENT_SIZE_MAX, EpcisError, import_epcis

    key = _load_key(key_file)
    try:
        with file.open("rb") as source:
            data = source.read(DOCUMENT_SIZE_MAX + 1)
    except OSError as error:
        fail(f"{file}: {error.strerror}", EXIT_BAD_INPUT)
    results = []
    with node(home) as client:
        try:
            txs = import_epcis(data, dict(parties), _shipment_on_ledger(client))
        except EpcisError as error:
            fail(f"{file}: {error}", EXIT_BAD_INPUT)
        for tx in txs:
            result = _submit_imported(client, key, tx.tx_type, tx.body, tx.event, timeout)
            results.append({"event": tx.event, **result})
            if not as_json:
                click.echo(f"{tx.event}  {tx.tx_type} {result['tx_id']} committed at height {result['height']}")
    emit(results, as_json, lambda done: f"{len(done)} transaction{'' if len(done) == 1 else 's'} from {file} committed")


# -- fhir --------------------------------------------------------------------------------------------


@click.group()
def fhir() -> None:
    """FHIR interop: check a resource before it is imported."""


@fhir.command("import-check")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--release", type=click.Choice(["R5", "R4B", "R4"]), default="R5", show_default=True)
@click.option("--ref", "refs", type=NamedParty(), multiple=True, metavar="REFERENCE=HEX",
              help="Map a FHIR reference (as written, e.g. Patient/123) to a person id or organisation key; repeat.")
@JSON_OPTION
def fhir_import_check(file: Path, release: str, refs: tuple[tuple[str, bytes], ...], as_json: bool) -> None:
    """Check a FHIR JSON resource (Patient, Observation, Condition, MedicationRequest, Consent)
    and show what p2pmed would make of it. Exit 2, naming the path, if it would refuse it."""
    from p2pmed.interop.fhir import IMPORT_SIZE_MAX, ClinicalData, FhirError, PatientData, import_resource

    try:
        with file.open("rb") as source:
            data = source.read(IMPORT_SIZE_MAX + 1)
        imported = import_resource(data, release, dict(refs))
    except OSError as error:
        fail(f"{file}: {error.strerror}", EXIT_BAD_INPUT)
    except FhirError as error:
        fail(f"{file}: {error}", EXIT_BAD_INPUT)
    if isinstance(imported, PatientData):
        result: dict[str, Any] = {"kind": "patient", "bytes": len(imported.content)}
    elif isinstance(imported, ClinicalData):
        result = {"kind": "record", "resource_type": imported.resource_type, "patient": imported.patient.hex(),
                  "category": imported.category, "bytes": len(imported.content)}
    else:
        result = {"kind": "consent.grant", "patient": imported.patient.hex(), "grantee": imported.grantee.hex(),
                  "categories": list(imported.categories), "purpose": imported.purpose, "expires_ms": imported.expires_ms}
    emit(result, as_json, human_import)


def human_import(result: dict[str, Any]) -> str:
    if result["kind"] == "patient":
        return f"Patient: valid; kept at the site ({result['bytes']} bytes), never on the ledger"
    if result["kind"] == "record":
        return (f"{result['resource_type']}: valid; a {result['category']} record of patient {result['patient']}"
                f" ({result['bytes']} bytes to encrypt)")
    return (f"Consent: valid; consent.grant by patient {result['patient']} to {result['grantee']}:"
            f" {', '.join(result['categories'])} for {result['purpose']} until {utc_time(result['expires_ms'])}")


HEALTH_COMMANDS = [identity, consent, audit, trial, supply, fhir]
