"""``p2pmed validator``: changing the validator set by a 2f+1 vote of the validators.

A site that will run a validator starts a node as an observer (``p2pmed init --observer``),
lets it sync, and writes a join request with that node's keys (``join-request``): its
profile signed with its own key. The operators of 2f+1 validators vote for it
(``add``), each with their validator's key; ``remove`` votes a validator out, and
``replace`` does both at once, which is how a site rotates its validator key (a new node
with the new key, then replace). A change takes effect ``EPOCH_DELAY_BLOCKS`` after the
block that orders the quorum-th vote: the new node then votes, a removed one follows as
an observer. ``list`` shows the set in force and any change waiting for its first height.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, HOME_OPTION, fail
from p2pmed.cli.key_protection import given_protection_files, protection_options
from p2pmed.cli.signing import ID, load_key, read, read_options, submit, write_options
from p2pmed.crypto import EncryptionPublicKey, Kem, KeyFileError
from p2pmed.input_error import KeyedInputError
from p2pmed.ledger.contracts.membership import ValidatorChange, ValidatorJoin, ValidatorProfile, sign_join
from p2pmed.strict_json import JsonProblem, loads

__all__ = ["VALIDATOR_COMMANDS", "JoinRequestError", "join_request_document", "parse_join_request"]

REQUEST_SIZE_MAX = 16 << 10
_FIELDS = {"key", "organisation", "address", "encryption_key", "encryption_kem", "proof"}


class JoinRequestError(KeyedInputError):
    """A join request file that is not one."""


def join_request_document(join: ValidatorJoin) -> dict[str, str]:
    profile = join.profile
    return {
        "key": profile.key.hex(),
        "organisation": profile.organisation.hex(),
        "address": profile.address,
        "encryption_key": profile.encryption_key.key.hex(),
        "encryption_kem": profile.encryption_key.kem.value,
        "proof": join.proof.hex(),
    }


def parse_join_request(data: bytes) -> ValidatorJoin:
    """A join request from untrusted bytes; raises ``JoinRequestError`` naming the field. The
    proof is checked by the ledger, which refuses a request its key did not sign."""
    if len(data) > REQUEST_SIZE_MAX:
        raise JoinRequestError("", f"larger than {REQUEST_SIZE_MAX} bytes")
    try:
        document = loads(data, 4)
    except JsonProblem as error:
        raise JoinRequestError("", str(error)) from None
    if not isinstance(document, dict) or set(document) != _FIELDS:
        raise JoinRequestError("", f"expected an object with exactly {', '.join(sorted(_FIELDS))}")
    text = {name: value for name, value in document.items() if isinstance(value, str)}
    if len(text) != len(_FIELDS):
        raise JoinRequestError(sorted(set(_FIELDS) - set(text))[0], "expected a string")
    kems = {kem.value: kem for kem in Kem}
    if text["encryption_kem"] not in kems:
        raise JoinRequestError("encryption_kem", f"expected one of {', '.join(sorted(kems))}")
    try:
        profile = ValidatorProfile(
            _hex(text, "key", 32),
            _hex(text, "organisation", 32),
            text["address"],
            EncryptionPublicKey(kems[text["encryption_kem"]], _hex(text, "encryption_key", None)),
        )
    except ValueError as error:
        raise JoinRequestError("encryption_key", str(error)) from None
    return ValidatorJoin(profile, _hex(text, "proof", 64))


def _hex(text: dict[str, str], name: str, size: int | None) -> bytes:
    try:
        value = bytes.fromhex(text[name])
    except ValueError:
        raise JoinRequestError(name, "expected hex digits") from None
    if size is not None and len(value) != size:
        raise JoinRequestError(name, f"expected {size} bytes")
    return value


def _read_request(path: Path) -> ValidatorJoin:
    try:
        with path.open("rb") as source:
            return parse_join_request(source.read(REQUEST_SIZE_MAX + 1))
    except OSError as error:
        fail(f"{path}: {error.strerror}", EXIT_BAD_INPUT)
    except JoinRequestError as error:
        fail(f"{path}: {error}", EXIT_BAD_INPUT)


@click.group()
def validator() -> None:
    """Change the validator set by a 2f+1 vote of the validators, and list it."""


@validator.command("join-request")
@HOME_OPTION
@click.option(
    "--organisation", type=ID, required=True, help="The id of the organisation (in force) that runs this node."
)
@click.option(
    "--address", required=True, help="Where the validators reach this node: a multiaddr, /ip4/10.0.0.5/tcp/26656."
)
@protection_options("the node's keys", envvar=True)
def join_request(home: Path, organisation: bytes, address: str) -> None:
    """Print the join request of the node in --home (its keys, signed by its own key), for
    the validators' operators to vote on with ``p2pmed validator add``."""
    from p2pmed.site.home import HomeError, load_home

    try:
        loaded = load_home(home, given_protection_files())
    except (KeyedInputError, KeyFileError, HomeError) as error:
        fail(str(error), EXIT_BAD_INPUT)
    profile = ValidatorProfile(loaded.key.public_key, organisation, address, loaded.encryption_key.public_key)
    join = ValidatorJoin(profile, sign_join(loaded.key, profile, loaded.genesis.chain_id))
    click.echo(json.dumps(join_request_document(join), indent=2))


@validator.command("add")
@write_options
@click.argument("request", type=click.Path(path_type=Path, dir_okay=False))
def add(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, request: Path) -> None:
    """Vote, with a validator's key (--key), to add the node of a join REQUEST file."""
    change = ValidatorChange(join=(_read_request(request),))
    submit(home, as_json, load_key(key_file), wait, timeout, "validator.change", change)


@validator.command("remove")
@write_options
@click.option("--validator", "validator_key", type=ID, required=True, help="The validator's public key.")
def remove(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, validator_key: bytes) -> None:
    """Vote, with a validator's key (--key), to remove a validator."""
    change = ValidatorChange(remove=(validator_key,))
    submit(home, as_json, load_key(key_file), wait, timeout, "validator.change", change)


@validator.command("replace")
@write_options
@click.option("--validator", "validator_key", type=ID, required=True, help="The key of the validator replaced.")
@click.argument("request", type=click.Path(path_type=Path, dir_okay=False))
def replace(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, validator_key: bytes, request: Path
) -> None:
    """Vote, with a validator's key (--key), to replace a validator by the node of a join
    REQUEST file in one change: how a site rotates its validator key, or replaces a stolen one."""
    change = ValidatorChange(remove=(validator_key,), join=(_read_request(request),))
    submit(home, as_json, load_key(key_file), wait, timeout, "validator.change", change)


def _human_set(result: dict[str, Any]) -> str:
    def rows(validators: list[dict[str, Any]]) -> list[str]:
        return [f"  {v['index']:>3}  {v['key'][:16]}…  {v['moniker'] or '?'}  {v['address']}" for v in validators]

    lines = [f"epoch {result['epoch']} from height {result['first_height']}: {len(result['validators'])} validators"]
    lines += rows(result["validators"])
    upcoming = result["next"]
    if upcoming is not None:
        lines.append(f"epoch {upcoming['epoch']} from height {upcoming['first_height']}:")
        lines += rows(upcoming["validators"])
    return "\n".join(lines)


@validator.command("list")
@read_options
def list_validators(home: Path, as_json: bool) -> None:
    """The validator set in force, and the next one if a change has passed."""
    read(home, as_json, _human_set, "validator.set")


VALIDATOR_COMMANDS = [validator]
