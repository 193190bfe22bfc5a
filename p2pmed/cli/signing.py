"""What the healthcare commands share (``p2pmed.cli.identity``, ``cli_audit``, ``cli_trial``,
``cli_supply`` and ``cli_record``): the options of the signing commands, the parameter
types, loading the signer's key, submitting a signed transaction, reading, and the
output helpers more than one group uses.

Reads call the node's RPC methods (see docs/operators.md). Writes are signed here, on
the client, with the key in ``--key FILE`` (an Ed25519 PEM: a person's or a site's; it
never leaves this machine; an encrypted one opens with ``--passphrase-file`` or
``--master-key-file``, see ``p2pmed.cli.key_protection``): the nonce comes from
``account.nonce``, the transaction goes out with ``tx.submit``, and ``--wait`` polls
``tx.get`` until the ledger has decided. A refusal, whether at submission or in the block, prints the ledger's reason
and exits 1.

Output is for people by default and JSON with ``--json``. Exit codes as in
``p2pmed.cli.chain``: 0 done, 1 the node is not running or refused, 2 bad input on
the command line. Ids, keys and digests are hex on the command line; a date alone
(``2030-06-30``) given as an expiry means the end of that day, UTC.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from p2pmed.cli.chain import human_tx
from p2pmed.cli.common import EXIT_BAD_INPUT, HOME_OPTION, JSON_OPTION, emit, fail, node
from p2pmed.cli.key_protection import given_protection, protection_options
from p2pmed.client.tx import sign_next, wait_decided
from p2pmed.crypto import KeyFileError, SigningKey, load_signing_key
from p2pmed.rpc.client import RpcClient, RpcError

if TYPE_CHECKING:
    from p2pmed.interop.fhir import ClinicalData, ImportedConsent, PatientData

__all__ = [
    "FHIR_REFS_OPTION",
    "FHIR_RELEASE_OPTION",
    "ID",
    "KEY_OPTION",
    "SIGNER_PROTECTION_OPTIONS",
    "TIMEOUT_OPTION",
    "HexBytes",
    "NamedParty",
    "UtcTime",
    "fhir_bundle",
    "load_key",
    "read",
    "read_fhir",
    "read_options",
    "refuse_if_rejected",
    "short_id",
    "submit",
    "submit_each",
    "submit_signed",
    "write_options",
]

ID_SIZE = 32


# -- parameter types ---------------------------------------------------------------------


class HexBytes(click.ParamType[bytes]):
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


class UtcTime(click.ParamType[int]):
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


class NamedParty(click.ParamType[tuple[str, bytes]]):
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


ID = HexBytes()
KEY_OPTION = click.option(
    "--key",
    "key_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="The signer's Ed25519 private key (PEM, mode 0600).",
)
SIGNER_PROTECTION_OPTIONS = protection_options("the signer's key files")
WAIT_OPTION = click.option(
    "--wait", is_flag=True, help="Wait until the transaction is in a block; exit 1 if the ledger refused it."
)
TIMEOUT_OPTION = click.option(
    "--timeout", type=click.FloatRange(0.1), default=60.0, show_default=True, help="Seconds --wait waits for the block."
)


FHIR_RELEASE_OPTION = click.option(
    "--release",
    type=click.Choice(["R5", "R4B", "R4"]),
    default="R5",
    show_default=True,
    help="The FHIR release of the resource (R4 is read with the R4B models).",
)
FHIR_REFS_OPTION = click.option(
    "--ref",
    "refs",
    type=NamedParty(),
    multiple=True,
    metavar="REFERENCE=HEX",
    help="Map a FHIR reference (as written, e.g. Patient/123) to a person id or organisation key; repeat.",
)


def write_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every signing command takes."""
    for option in reversed(
        (HOME_OPTION, JSON_OPTION, KEY_OPTION, SIGNER_PROTECTION_OPTIONS, WAIT_OPTION, TIMEOUT_OPTION)
    ):
        command = option(command)
    return command


def read_options(command: Callable[..., Any]) -> Callable[..., Any]:
    return HOME_OPTION(JSON_OPTION(command))


# -- talking to the node -----------------------------------------------------------------


def read(home: Path, as_json: bool, human: Callable[[Any], str], method: str, **params: Any) -> None:
    with node(home) as client:
        result = client.call(method, **params)
    emit(result, as_json, human)


def load_key(path: Path) -> SigningKey:
    try:
        return load_signing_key(path, given_protection())
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
        fail(
            f"{prefix}{tx_type} {tx.id.hex()} is still pending after {timeout_s:g} s; see later: p2pmed tx get "
            f"{tx.id.hex()}"
        )
    return result


def refuse_if_rejected(result: dict[str, Any], tx_type: str, where: str = "") -> None:
    """Exit 1 saying why, if the ledger refused the transaction ``result`` describes."""
    if result["status"] == "rejected":
        detail = f": {result['detail']}" if result["detail"] else ""
        fail(f"{where + ': ' if where else ''}the ledger refused {tx_type} ({result['reason']}){detail}")


def submit_each(
    client: RpcClient, key: SigningKey, txs: list[tuple[str, Any, str]], timeout_s: float, as_json: bool, source: str
) -> list[dict[str, Any]]:
    """Submit each ``(tx_type, body, where)`` in order and wait for it, printing a line per
    commit unless ``as_json``; each answer says under ``source`` where its transaction came
    from (an EPCIS ``event``, a FHIR ``provision``). The first refusal exits 1 naming it; the
    transactions before it stay committed."""
    results = []
    for tx_type, body, where in txs:
        result = submit_signed(client, key, tx_type, body, True, timeout_s, where=where)
        refuse_if_rejected(result, tx_type, where=where)
        results.append({source: where, **result})
        if not as_json:
            click.echo(f"{where}  {tx_type} {result['tx_id']} committed at height {result['height']}")
    return results


def read_fhir(
    path: Path, release: str, references: dict[str, bytes], category: str = ""
) -> PatientData | ClinicalData | ImportedConsent:
    """What the FHIR resource in ``path`` means to the ledger (``p2pmed.interop.fhir``; ``category``
    for an Observation that codes none); an unreadable file or a resource p2pmed refuses exits 2
    naming the path in the resource."""
    from p2pmed.interop.fhir import IMPORT_SIZE_MAX, FhirError, import_resource

    try:
        with path.open("rb") as source:
            data = source.read(IMPORT_SIZE_MAX + 1)
        return import_resource(data, release, references, category=category)
    except OSError as error:
        fail(f"{path}: {error.strerror}", EXIT_BAD_INPUT)
    except FhirError as error:
        fail(f"{path}: {error}", EXIT_BAD_INPUT)


def submit(home: Path, as_json: bool, key: SigningKey, wait: bool, timeout_s: float, tx_type: str, body: Any) -> None:
    with node(home) as client:
        result = submit_signed(client, key, tx_type, body, wait, timeout_s)
    emit(result, as_json, human_tx)
    refuse_if_rejected(result, tx_type)


# -- human output -----------------------------------------------------------------------------


def short_id(hex_id: str) -> str:
    return f"{hex_id[:16]}…"


def fhir_bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A FHIR collection Bundle: the form FHIR tools import a set of resources in."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": resource} for resource in resources]}
