"""The ``p2pmed trial`` commands: clinical trials, from registration to anchored results and
outcome switching. Signing, reads, output and exit codes as in ``p2pmed.cli.signing``."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from p2pmed.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, emit, fail, node, utc_time
from p2pmed.cli.signing import ID, load_key, read, read_options, short_id, submit, write_options
from p2pmed.ledger.contracts import trials as trial_rules

__all__ = ["TRIAL_COMMANDS"]


# -- human output -----------------------------------------------------------------------------


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
        lines.append(
            f"  result {number}: data set {anchored['dataset_sha256']} at {utc_time(anchored['time_ms'])}: {verdict}"
        )
    return "\n".join(lines)


def human_verification(result: dict[str, Any]) -> str:
    if result["matches"]:
        return f"{result['sha256']} is result {result['result_number']} of trial {result['trial_id']}"
    return f"{result['sha256']} is NOT an anchored result of trial {result['trial_id']}"


def human_flagged(result: dict[str, Any]) -> str:
    lines = [
        f"{each['trial_id']} (sponsor {short_id(each['sponsor'])}): {' '.join(each['switches'])}"
        for each in result["trials"]
    ]
    return "\n".join(lines) or "no trial is flagged for outcome switching"


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
    for option in reversed(
        (
            click.option(
                "--protocol",
                type=click.Path(path_type=Path, dir_okay=False),
                default=None,
                help="The protocol document.",
            ),
            click.option("--protocol-sha256", type=ID, default=None, help="Or its SHA-256."),
            click.option("--primary", multiple=True, required=True, help="A primary endpoint; repeat for several."),
            click.option("--secondary", multiple=True, help="A secondary endpoint; repeat for several."),
            click.option("--planned", type=click.IntRange(1), default=None, help="Planned enrolment (an estimate)."),
        )
    ):
        command = option(command)
    return command


def _protocol(
    protocol: Path | None,
    protocol_sha256: bytes | None,
    primary: tuple[str, ...],
    secondary: tuple[str, ...],
    planned: int | None,
) -> trial_rules.Protocol:
    return trial_rules.Protocol(
        _digest(protocol, protocol_sha256, "protocol"), _endpoints(primary), _endpoints(secondary), planned
    )


TRIAL_ID = click.argument("trial_id")


@click.group()
def trial() -> None:
    """Clinical trials: register, consent, enrol, anchor results, and check them for outcome switching."""


@trial.command("register")
@write_options
@TRIAL_ID
@_protocol_options
def trial_register(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    trial_id: str,
    protocol: Path | None,
    protocol_sha256: bytes | None,
    primary: tuple[str, ...],
    secondary: tuple[str, ...],
    planned: int | None,
) -> None:
    """Register TRIAL_ID (e.g. NCT01234567) with its protocol and pre-declared endpoints, signed by the sponsor."""
    body = trial_rules.TrialRegister(trial_id, _protocol(protocol, protocol_sha256, primary, secondary, planned))
    submit(home, as_json, load_key(key_file), wait, timeout, "trial.register", body)


@trial.command("amend")
@write_options
@TRIAL_ID
@_protocol_options
def trial_amend(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    trial_id: str,
    protocol: Path | None,
    protocol_sha256: bytes | None,
    primary: tuple[str, ...],
    secondary: tuple[str, ...],
    planned: int | None,
) -> None:
    """Replace the protocol (endpoints are frozen from the first enrolment), signed by the sponsor."""
    body = trial_rules.TrialAmend(trial_id, _protocol(protocol, protocol_sha256, primary, secondary, planned))
    submit(home, as_json, load_key(key_file), wait, timeout, "trial.amend", body)


@trial.command("consent")
@write_options
@TRIAL_ID
def trial_consent(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, trial_id: str) -> None:
    """Give research consent to TRIAL_ID, signed by the patient."""
    submit(home, as_json, load_key(key_file), wait, timeout, "trial.consent", trial_rules.TrialConsent(trial_id))


@trial.command("withdraw")
@write_options
@TRIAL_ID
def trial_withdraw(home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, trial_id: str) -> None:
    """Withdraw research consent from TRIAL_ID, signed by the patient."""
    submit(home, as_json, load_key(key_file), wait, timeout, "trial.withdraw", trial_rules.TrialWithdraw(trial_id))


@trial.command("enroll")
@write_options
@TRIAL_ID
@click.option("--person", type=ID, required=True, help="The patient's person id.")
def trial_enroll(
    home: Path, as_json: bool, key_file: Path, wait: bool, timeout: float, trial_id: str, person: bytes
) -> None:
    """Enrol a consenting patient, signed by the sponsor or a clinician or researcher."""
    submit(home, as_json, load_key(key_file), wait, timeout, "trial.enroll", trial_rules.TrialEnroll(trial_id, person))


@trial.command("results")
@write_options
@TRIAL_ID
@click.option("--dataset", type=click.Path(path_type=Path, dir_okay=False), default=None, help="The result data set.")
@click.option("--dataset-sha256", type=ID, default=None, help="Or its SHA-256.")
@click.option("--primary", multiple=True, help="A primary endpoint reported; repeat for several.")
@click.option("--secondary", multiple=True, help="A secondary endpoint reported; repeat for several.")
def trial_results(
    home: Path,
    as_json: bool,
    key_file: Path,
    wait: bool,
    timeout: float,
    trial_id: str,
    dataset: Path | None,
    dataset_sha256: bytes | None,
    primary: tuple[str, ...],
    secondary: tuple[str, ...],
) -> None:
    """Anchor results, signed by the sponsor; endpoints that differ from the registration are flagged."""
    body = trial_rules.TrialResults(
        trial_id, _digest(dataset, dataset_sha256, "dataset"), _endpoints(primary), _endpoints(secondary)
    )
    submit(home, as_json, load_key(key_file), wait, timeout, "trial.results", body)


@trial.command("show")
@read_options
@TRIAL_ID
def trial_show(home: Path, as_json: bool, trial_id: str) -> None:
    """Show a trial: protocol, endpoints, enrolment, results and any outcome switching."""
    read(home, as_json, human_trial, "trial.get", trial_id=trial_id)


@trial.command("verify")
@read_options
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
@read_options
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
def trial_flagged(home: Path, as_json: bool, limit: int) -> None:
    """List trials flagged for outcome switching, most recent first."""
    read(home, as_json, human_flagged, "trial.flagged", limit=limit)


TRIAL_COMMANDS = [trial]
