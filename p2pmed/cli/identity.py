"""The ``p2pmed identity`` and ``p2pmed consent`` commands: people and organisations, and
patient consent. Signing, reads, output and exit codes as in ``p2pmed.cli.signing``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, JSON_OPTION, emit, fail, node, utc_time
from p2pmed.cli.key_protection import given_protection, protection_options
from p2pmed.cli.signing import (
    FHIR_REFS_OPTION,
    FHIR_RELEASE_OPTION,
    ID,
    HexBytes,
    UtcTime,
    fhir_bundle,
    load_key,
    read,
    read_fhir,
    read_options,
    short_id,
    submit,
    submit_each,
    write_options,
)
from p2pmed.crypto import (
    EncryptionPrivateKey,
    EncryptionPublicKey,
    Kem,
    KeyFileError,
    SigningKey,
    save_encryption_key,
    save_signing_key,
)
from p2pmed.ledger.contracts import consent as consent_rules
from p2pmed.ledger.contracts import identity as identity_rules

if TYPE_CHECKING:
    from p2pmed.interop.fhir import ImportedConsent

__all__ = ["IDENTITY_COMMANDS"]

SIGNING_KEY_FILE = "signing_key.pem"
ENCRYPTION_KEY_FILE = "encryption_key"
KEM_OPTION = click.option(
    "--kem",
    type=click.Choice([kem.value for kem in Kem]),
    default=Kem.X25519.value,
    show_default=True,
    help="The encryption key's algorithm.",
)


# -- human output -----------------------------------------------------------------------------


def human_person(result: dict[str, Any]) -> str:
    state = "in force" if result["active"] else "REVOKED"
    return (
        f"person {result['id']}  {result['role']}, {state}\n"
        f"  registered by {result['organisation']}\n"
        f"  signing key    {result['key']}\n"
        f"  encryption key {result['encryption_key']['key']} ({result['encryption_key']['kem']})"
    )


def human_organisation(result: dict[str, Any]) -> str:
    admitted = result["since_height"]
    state = f"in force since height {admitted}" if result["active"] else f"REVOKED (admitted at height {admitted})"
    return (
        f"{result['name']} ({result['kind']}), {state}\n"
        f"  id             {result['id']}\n"
        f"  signing key    {result['key']}\n"
        f"  encryption key {result['encryption_key']['key']} ({result['encryption_key']['kem']})"
    )


def human_consents(result: dict[str, Any]) -> str:
    lines = [f"patient {result['patient']} at {utc_time(result['time_ms'])} (the latest block)"]
    for consent in result["consents"]:
        lines.append(
            f"  {consent['category']:<13} to {consent['grantee']} for {consent['purpose']}"
            f" until {utc_time(consent['expires_ms'])} (granted by {short_id(consent['granted_by'])})"
        )
    if not result["consents"]:
        lines.append("  no consent in force")
    if result["truncated"]:
        lines.append("  … more not shown: raise --limit")
    lines += [
        f"  DENIED {deny['category']:<13} to {deny['grantee'] or 'everyone'} for {deny['purpose']}"
        f" until {utc_time(deny['expires_ms'])} (denied by {short_id(deny['denied_by'])}): overrides any consent"
        for deny in result["denies"]
    ]
    lines += [
        f"  delegate {delegate['delegate']} until {utc_time(delegate['expires_ms'])}"
        for delegate in result["delegates"]
    ]
    return "\n".join(lines)


# -- identity -----------------------------------------------------------------------------------


@click.group()
def identity() -> None:
    """People and organisations: make keys, register people, vote organisations in, look them up."""


@identity.command("keys")
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help=f"Directory for {SIGNING_KEY_FILE} and {ENCRYPTION_KEY_FILE} (created; existing keys are never overwritten).",
)
@KEM_OPTION
@protection_options("the new key files")
@JSON_OPTION
def identity_keys(out: Path, kem: str, as_json: bool) -> None:
    """Make a person's signing key and encryption key (files of mode 0600, encrypted under a
    passphrase or master key file if one is given) and print their public halves, which the
    registering site needs. The signing key's public half is the person's id for life. Also makes the new keys for
    `identity rotate` and `rotate-org`."""
    signing, encryption = SigningKey.generate(), EncryptionPrivateKey.generate(Kem(kem))
    existing = [name for name in (SIGNING_KEY_FILE, ENCRYPTION_KEY_FILE) if (out / name).exists()]
    if existing:
        fail(f"{out / existing[0]}: already exists; refusing to overwrite a key", EXIT_BAD_INPUT)
    protection = given_protection()
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        save_signing_key(out / SIGNING_KEY_FILE, signing, protection)
        save_encryption_key(out / ENCRYPTION_KEY_FILE, encryption, protection)
    except (KeyFileError, OSError) as error:
        fail(str(error), EXIT_BAD_INPUT)
    result = {
        "public_key": signing.public_key.hex(),
        "kem": kem,
        "encryption_key": encryption.public_key.key.hex(),
        "signing_key_file": str(out / SIGNING_KEY_FILE),
        "encryption_key_file": str(out / ENCRYPTION_KEY_FILE),
    }
    emit(
        result,
        as_json,
        lambda r: (
            f"wrote {r['signing_key_file']} and {r['encryption_key_file']} (keep them secret)\n"
            f"person id / signing key: {r['public_key']}\n"
            f"encryption key ({r['kem']}): {r['encryption_key']}\n"
            f"a site registers this person with:\n  p2pmed identity register-person --public-key {r['public_key']} "
            f"--encryption-key {r['encryption_key']} --kem {r['kem']} --role ROLE --key SITE_KEY"
        ),
    )


def _encryption_key(kem: str, key: bytes) -> EncryptionPublicKey:
    try:
        return EncryptionPublicKey(Kem(kem), key)
    except ValueError as error:
        fail(f"--encryption-key: {error}", EXIT_BAD_INPUT)


@identity.command("register-person")
@write_options
@click.option("--public-key", type=ID, required=True, help="The person's Ed25519 public key: their id.")
@click.option("--encryption-key", type=HexBytes(None), required=True, help="The person's public encryption key.")
@KEM_OPTION
@click.option("--role", type=click.Choice(sorted(identity_rules.PERSON_ROLES)), required=True)
def register_person(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    public_key: bytes,
    encryption_key: bytes,
    kem: str,
    role: str,
) -> None:
    """Register a person, signed with an organisation's key (--key)."""
    body = identity_rules.PersonRegister(public_key, role, _encryption_key(kem, encryption_key))
    submit(home, as_json, load_key(key_file), wait, timeout, "identity.person.register", body)


@identity.command("propose-org")
@write_options
@click.option(
    "--org-key", type=ID, required=True, help="The organisation's Ed25519 public key (its id, when admitting it)."
)
@click.option("--name", required=True)
@click.option("--kind", type=click.Choice(sorted(identity_rules.ORGANISATION_KINDS)), required=True)
@click.option("--encryption-key", type=HexBytes(None), required=True, help="The organisation's public encryption key.")
@KEM_OPTION
@click.option(
    "--replaces",
    type=ID,
    default=None,
    help="The id of an admitted organisation whose profile this replaces (its key was stolen, or it was revoked).",
)
def propose_org(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    org_key: bytes,
    name: str,
    kind: str,
    encryption_key: bytes,
    kem: str,
    replaces: bytes | None,
) -> None:
    """Vote, with a validator's key (--key), to admit an organisation, or with --replaces to
    give an admitted one a new profile: a new key when its key was stolen (the kind stays;
    a revoked organisation is reinstated). It takes effect once 2f+1 validators have
    proposed the same."""
    profile = identity_rules.OrganisationProfile(org_key, name, kind, _encryption_key(kem, encryption_key))
    body = identity_rules.OrgProposal(profile, replaces or b"")
    submit(home, as_json, load_key(key_file), wait, timeout, "identity.org.propose", body)


@identity.command("revoke-org")
@write_options
@click.option("--org", "org_id", type=ID, required=True, help="The organisation's id: the key it was admitted with.")
def revoke_org(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, org_id: bytes) -> None:
    """Vote, with a validator's key (--key), to revoke an organisation; once 2f+1 validators
    have, it and the staff it registered are no longer in force."""
    submit(home, as_json, load_key(key_file), wait, timeout, "identity.org.revoke", identity_rules.OrgRevoke(org_id))


@identity.command("revoke-person")
@write_options
@click.option("--person", "person_id", type=ID, required=True, help="The person's id.")
def revoke_person(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, person_id: bytes) -> None:
    """Revoke a person, signed (--key) by the person, the organisation that registered them,
    or a validator (2f+1 validators sending it revoke anyone)."""
    body = identity_rules.PersonRevoke(person_id)
    submit(home, as_json, load_key(key_file), wait, timeout, "identity.person.revoke", body)


NEW_KEY_OPTION = click.option(
    "--new-key",
    "new_key_file",
    type=click.Path(path_type=Path),
    required=True,
    help="The new signing key file (from p2pmed identity keys): it signs the rotation, to show it is held.",
)
NEW_ENCRYPTION_KEY_OPTION = click.option(
    "--encryption-key", type=HexBytes(None), required=True, help="The new public encryption key."
)


def _rotate(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, new_key_file: Path, tx_type: str, body: Any
) -> None:
    """Submit ``body`` (a rotation, its key and proof still empty) signed by the current key,
    with the new key and its proof filled in."""
    current, new_key = load_key(key_file), load_key(new_key_file)
    with node(home) as client:
        chain_id = client.call("node.status")["chain_id"]
    proof = identity_rules.sign_rotation(new_key, current.public_key, chain_id)
    rotation = dataclasses.replace(body, key=new_key.public_key, proof=proof)
    submit(home, as_json, current, wait, timeout, tx_type, rotation)


@identity.command("rotate")
@write_options
@NEW_KEY_OPTION
@NEW_ENCRYPTION_KEY_OPTION
@KEM_OPTION
def rotate(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    new_key_file: Path,
    encryption_key: bytes,
    kem: str,
) -> None:
    """Replace a person's signing and encryption keys, signed with their current key (--key)
    and the new one (--new-key); their id stays, and a key once used is never used again."""
    body = identity_rules.PersonRotate(b"", _encryption_key(kem, encryption_key), b"")
    _rotate(home, as_json, key_file, wait, timeout, new_key_file, "identity.person.rotate", body)


@identity.command("rotate-org")
@write_options
@NEW_KEY_OPTION
@NEW_ENCRYPTION_KEY_OPTION
@KEM_OPTION
def rotate_org(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    new_key_file: Path,
    encryption_key: bytes,
    kem: str,
) -> None:
    """Replace an organisation's signing and encryption keys, signed with its current key
    (--key) and the new one (--new-key); its id stays, the old key counts for nothing from the
    block that orders this, and a key once used is never used again. A genesis site's validator
    key keeps signing consensus. Make the new keys with `p2pmed identity keys`."""
    body = identity_rules.OrgRotate(b"", _encryption_key(kem, encryption_key), b"")
    _rotate(home, as_json, key_file, wait, timeout, new_key_file, "identity.org.rotate", body)


@identity.command("person")
@read_options
@click.argument("id_or_key", type=ID)
def identity_person(home: Path, as_json: bool, id_or_key: bytes) -> None:
    """Show a person by id, or by their current signing key."""
    read(home, as_json, human_person, "identity.person", id_or_key=id_or_key.hex())


@identity.command("org")
@read_options
@click.argument("id_or_key", type=ID)
def identity_org(home: Path, as_json: bool, id_or_key: bytes) -> None:
    """Show an organisation by id (in force or revoked), or by its current signing key."""
    read(home, as_json, human_organisation, "identity.organisation", key=id_or_key.hex())


# -- consent ------------------------------------------------------------------------------------


def _category_option(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--category",
        "categories",
        type=click.Choice(sorted(consent_rules.CATEGORIES)),
        multiple=True,
        required=required,
        help="A data category; repeat for several.",
    )


CATEGORY_OPTION = _category_option(required=True)
PATIENT_OPTION = click.option(
    "--patient",
    type=ID,
    default=None,
    help="The patient's person id [default: the signer's key, when the patient signs].",
)


@click.group()
def consent() -> None:
    """Patient consent: grant, revoke, deny, name delegates, and see what is in force."""


PURPOSE_CHOICE = click.Choice(sorted(consent_rules.PURPOSES))


def _refuse_with_fhir(given: dict[str, object]) -> None:
    """With ``--fhir`` the file says who, what, why and until when: the options may not."""
    clashing = [name for name, value in given.items() if value]
    if clashing:
        fail(f"--fhir FILE says what is granted and denied: leave out {', '.join(clashing)}", EXIT_BAD_INPUT)


def _consent_from_fhir(
    path: Path, release: str, refs: tuple[tuple[str, bytes], ...], patient: bytes | None
) -> ImportedConsent:
    """The grants and denies a FHIR Consent means; ``--patient`` may only confirm its subject."""
    from p2pmed.interop.fhir import ImportedConsent

    imported = read_fhir(path, release, dict(refs))
    if not isinstance(imported, ImportedConsent):
        fail(f"{path}: a Consent is granted here; records are added with p2pmed record add", EXIT_BAD_INPUT)
    subject = imported.transactions[0].body.patient
    if patient is not None and patient != subject:
        fail(f"--patient {patient.hex()} is not the Consent's subject {subject.hex()}", EXIT_BAD_INPUT)
    return imported


@consent.command("grant")
@write_options
@PATIENT_OPTION
@click.option("--grantee", type=ID, default=None, help="A person id or an organisation id.")
@_category_option(required=False)
@click.option(
    "--purpose", "purposes", type=PURPOSE_CHOICE, multiple=True, help="HL7 purpose of use; repeat for several."
)
@click.option("--expires", type=UtcTime(end_of_day=True), default=None, help="Last day (UTC), or the moment, it holds.")
@click.option(
    "--fhir",
    "fhir_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Or a FHIR Consent (JSON): submit the grants and denies it means, in order.",
)
@FHIR_RELEASE_OPTION
@FHIR_REFS_OPTION
def consent_grant(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    patient: bytes | None,
    grantee: bytes | None,
    categories: tuple[str, ...],
    purposes: tuple[str, ...],
    expires: int | None,
    fhir_file: Path | None,
    release: str,
    refs: tuple[tuple[str, bytes], ...],
) -> None:
    """Grant GRANTEE access to the patient's data of these categories for these purposes,
    signed by the patient or a delegate. With --fhir, the grants and denies a FHIR Consent
    means are submitted in order, each waited for; the first refusal stops, naming its
    provision, and those before it stay committed."""
    key = load_key(key_file)
    if fhir_file is not None:
        _refuse_with_fhir({"--grantee": grantee, "--category": categories, "--purpose": purposes, "--expires": expires})
        imported = _consent_from_fhir(fhir_file, release, refs, patient)
        txs = [(tx.tx_type, tx.body, tx.path) for tx in imported.transactions]
        with node(home) as client:
            results = submit_each(client, key, txs, timeout, as_json, source="provision")
        emit(results, as_json, lambda done: f"{len(done)} transaction(s) from {fhir_file} committed")
        return
    if refs:
        fail("--ref maps references in a FHIR resource: give it with --fhir", EXIT_BAD_INPUT)
    missing = [
        name
        for name, value in (("--grantee", grantee), ("--category", categories), ("--purpose", purposes))
        if not value
    ] + (["--expires"] if expires is None else [])
    if missing:
        fail(f"give {', '.join(missing)} (or a FHIR Consent with --fhir)", EXIT_BAD_INPUT)
    assert grantee is not None and expires is not None
    body = consent_rules.ConsentGrant(patient or key.public_key, grantee, categories, purposes, expires)
    submit(home, as_json, key, wait, timeout, "consent.grant", body)


@consent.command("revoke")
@write_options
@PATIENT_OPTION
@click.option("--grantee", type=ID, required=True)
@CATEGORY_OPTION
def consent_revoke(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    patient: bytes | None,
    grantee: bytes,
    categories: tuple[str, ...],
) -> None:
    """Revoke consents; they end with the block that orders the revocation."""
    key = load_key(key_file)
    body = consent_rules.ConsentRevoke(patient or key.public_key, grantee, categories)
    submit(home, as_json, key, wait, timeout, "consent.revoke", body)


def _denied(grantee: bytes | None, everyone: bool) -> bytes:
    if (grantee is None) == (not everyone):
        fail("give exactly one of --grantee and --everyone", EXIT_BAD_INPUT)
    return consent_rules.EVERYONE if everyone else grantee or b""


DENIED_OPTIONS = (
    click.option("--grantee", type=ID, default=None, help="The person id or organisation key denied."),
    click.option("--everyone", is_flag=True, help="Deny every reader instead."),
)


def denied_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(DENIED_OPTIONS):
        command = option(command)
    return command


@consent.command("deny")
@write_options
@PATIENT_OPTION
@denied_options
@CATEGORY_OPTION
@click.option(
    "--purpose",
    "purposes",
    type=PURPOSE_CHOICE,
    multiple=True,
    help="A purpose of use denied; repeat for several [default: all].",
)
@click.option(
    "--expires",
    type=UtcTime(end_of_day=True),
    default=None,
    help="Last day (UTC), or the moment, it holds [default: until lifted].",
)
def consent_deny(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    patient: bytes | None,
    grantee: bytes | None,
    everyone: bool,
    categories: tuple[str, ...],
    purposes: tuple[str, ...],
    expires: int | None,
) -> None:
    """Deny GRANTEE (or --everyone) the patient's data of these categories for these purposes,
    whatever consents say, signed by the patient or a delegate. A deny of an organisation
    covers its staff; break-glass overrides a deny, and the override is on the audit trail."""
    key = load_key(key_file)
    body = consent_rules.ConsentDeny(
        patient or key.public_key,
        _denied(grantee, everyone),
        categories,
        purposes or tuple(sorted(consent_rules.PURPOSES)),
        consent_rules.NEVER_MS if expires is None else expires,
    )
    submit(home, as_json, key, wait, timeout, "consent.deny", body)


@consent.command("undeny")
@write_options
@PATIENT_OPTION
@denied_options
@CATEGORY_OPTION
def consent_undeny(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    patient: bytes | None,
    grantee: bytes | None,
    everyone: bool,
    categories: tuple[str, ...],
) -> None:
    """Lift the denies of GRANTEE (or --everyone) for these categories, every purpose: the
    consents they overrode hold again from the block that orders it."""
    key = load_key(key_file)
    body = consent_rules.ConsentUndeny(patient or key.public_key, _denied(grantee, everyone), categories)
    submit(home, as_json, key, wait, timeout, "consent.undeny", body)


@consent.command("delegate")
@write_options
@click.option("--delegate", type=ID, required=True, help="A person id or an organisation id.")
@click.option(
    "--expires", type=UtcTime(end_of_day=True), required=True, help="Last day (UTC), or the moment, it holds."
)
@click.option(
    "--category",
    "categories",
    type=click.Choice(sorted(consent_rules.CATEGORIES)),
    multiple=True,
    help="A category the delegate may act for; repeat for several [default: all].",
)
@click.option(
    "--purpose",
    "purposes",
    type=click.Choice(sorted(consent_rules.PURPOSES)),
    multiple=True,
    help="A purpose the delegate may grant; repeat for several [default: all].",
)
def consent_delegate(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    delegate: bytes,
    expires: int,
    categories: tuple[str, ...],
    purposes: tuple[str, ...],
) -> None:
    """Name a delegate who may grant and revoke for the patient, within these categories and
    purposes and until the expiry (signed by the patient)."""
    body = consent_rules.ConsentDelegate(delegate, expires, categories, purposes)
    submit(home, as_json, load_key(key_file), wait, timeout, "consent.delegate", body)


@consent.command("undelegate")
@write_options
@click.option("--delegate", type=ID, required=True)
def consent_undelegate(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, delegate: bytes) -> None:
    """Remove a delegate (signed by the patient)."""
    submit(
        home,
        as_json,
        load_key(key_file),
        wait,
        timeout,
        "consent.undelegate",
        consent_rules.ConsentUndelegate(delegate),
    )


@consent.command("show")
@read_options
@click.argument("patient", type=ID)
@click.option("--fhir", is_flag=True, help="Print the consents and denies as FHIR R5 Consent resources (JSON).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def consent_show(home: Path, as_json: bool, patient: bytes, fhir: bool, limit: int) -> None:
    """Show the consents and denies in force for PATIENT, and their delegates."""
    with node(home) as client:
        result = client.call("consent.list", patient=patient.hex(), limit=limit, format="fhir" if fhir else "entries")
    if fhir:
        click.echo(json.dumps(fhir_bundle(result["consents"] + result["denies"]), indent=2))
    else:
        emit(result, as_json, human_consents)


IDENTITY_COMMANDS = [identity, consent]
