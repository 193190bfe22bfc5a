"""A research export, run by the study's organisation (or one of its researchers) at its site.

1. Ask the node for the study and the patients consenting to it at the ledger's latest
   height, with their records in the study's categories (``research.participants``).
2. Read each record through the normal custody path: a ``record.read`` for the study (the
   ledger checks the study consent again and puts the read on the patient's trail), then the
   custodians' shares (``p2pmed.client.records.fetch_record``). A read the ledger refuses
   (the patient withdrew or denied meanwhile, the record was erased) leaves that record out.
3. De-identify (``p2pmed.interop.deidentify``, Safe Harbor) under the study's pseudonyms,
   keyed by the site's secret for the study (``study_secret``); content that is not a FHIR
   Patient, Observation, Condition or MedicationRequest is left out, never guessed at.
4. Refuse the data set if its smallest class of quasi-identifiers is below the study's k
   (``KAnonymityError``): nothing is written and nothing anchored.
5. Anchor the manifest (``research.export``), which the ledger accepts only if every patient
   in it still consents at that block, then move the files into place: ``manifest.json``
   (what, how many, each file's SHA-256; its own SHA-256 is the anchor's), ``patients.ndjson``
   and ``resources.ndjson``, and ``anchor.json`` (the transaction that anchored it).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from p2pmed.client.records import LedgerRefused, fetch_record, submit
from p2pmed.crypto import CryptoError, EncryptionPrivateKey, SigningKey
from p2pmed.interop.deidentify import (
    SUPPORTED_TYPES,
    DeidentifiedPatient,
    KAnonymityError,
    Pseudonyms,
    deidentify_patient,
    deidentify_resource,
    identifying_values,
    smallest_class,
)
from p2pmed.interop.fhir import FhirError, parse_resource
from p2pmed.ledger.contracts.records import RecordRead
from p2pmed.ledger.contracts.research import ResearchExport
from p2pmed.rpc.client import RpcClient, RpcError

__all__ = ["ExportRefused", "ExportResult", "export_study", "study_secret"]

SECRET_SIZE = 32
MANIFEST, PATIENTS, RESOURCES, ANCHOR = "manifest.json", "patients.ndjson", "resources.ndjson", "anchor.json"


class ExportRefused(Exception):
    """The export cannot be made: the study is closed, or nobody's records could be read."""


@dataclass(frozen=True)
class ExportResult:
    study_id: str
    out: Path
    manifest_sha256: str
    patients: int
    records: int
    smallest_class: int
    left_out: dict[str, int]
    tx_id: str


@dataclass
class _Patient:
    patient: bytes
    records: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)
    demographics: dict[str, Any] | None = None


def study_secret(path: Path) -> bytes:
    """The site's secret for one study's pseudonyms, made (mode 0600) on first use. Keep it:
    without it the next export of the study cannot link to the last."""
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(os.urandom(SECRET_SIZE))
        secret = path.read_bytes()
    if len(secret) != SECRET_SIZE:
        raise ExportRefused(f"{path}: a study secret is {SECRET_SIZE} bytes, this file has {len(secret)}")
    return secret


def _read(
    client: RpcClient, exporter: SigningKey, encryption: EncryptionPrivateKey, study_id: str, record_id: bytes
) -> bytes | None:
    """One record read for the study through custody, or None if the ledger or custody refused it."""
    try:
        submit(client, exporter, "record.read", RecordRead(record_id, "HRESCH", False, study=study_id))
        return fetch_record(client, exporter, encryption, record_id)
    except (LedgerRefused, CryptoError, RpcError):
        return None


def _resource(content: bytes) -> dict[str, Any] | None:
    for release in ("R5", "R4B"):
        try:
            return parse_resource(content, release)
        except FhirError:
            continue
    return None


def _collect(
    client: RpcClient, exporter: SigningKey, encryption: EncryptionPrivateKey, study_id: str, left_out: Counter[str]
) -> tuple[list[_Patient], int]:
    """Each consenting patient's readable FHIR resources, and the ledger time they were listed at."""
    listed = client.call("research.participants", study_id=study_id)
    patients = []
    for entry in listed["patients"]:
        gathered = _Patient(bytes.fromhex(entry["patient"]))
        for record_hex in entry["records"]:
            record_id = bytes.fromhex(record_hex)
            content = _read(client, exporter, encryption, study_id, record_id)
            resource = None if content is None else _resource(content)
            if content is None:
                left_out["read refused"] += 1
            elif resource is None or resource["resourceType"] not in SUPPORTED_TYPES:
                left_out["not a supported FHIR resource"] += 1
            elif resource["resourceType"] == "Patient":
                gathered.demographics = resource
            else:
                gathered.records.append((record_id, resource))
        if gathered.records:
            patients.append(gathered)
    return patients, listed["time_ms"]


def _ndjson(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(line, sort_keys=True, separators=(",", ":")).encode() + b"\n" for line in lines)


def _build(
    patients: list[_Patient], pseudonyms: Pseudonyms, export_year: int
) -> tuple[list[DeidentifiedPatient], list[dict[str, Any]]]:
    people, resources = [], []
    for each in patients:
        person = deidentify_patient(each.demographics, pseudonyms, each.patient, export_year)
        known = identifying_values(each.demographics) if each.demographics else frozenset()
        people.append(person)
        for record_id, resource in each.records:
            resources.append(deidentify_resource(resource, pseudonyms, each.patient, record_id, known))
    people.sort(key=lambda person: person.resource["id"])
    resources.sort(key=lambda resource: resource["id"])
    return people, resources


def _check_k(people: list[DeidentifiedPatient], k: int) -> int:
    size, values = smallest_class(person.quasi_identifiers for person in people)
    if size < k:
        shown = (
            "no patient"
            if values is None
            else (f"{size} patient(s) share year of birth {values.birth_year}, sex {values.sex}, ZIP {values.zip3}")
        )
        raise KAnonymityError(
            f"the data set is not {k}-anonymous: its smallest class of quasi-identifiers has {size} patient(s)"
            f" ({shown}); the study asks k = {k}. Nothing was exported."
        )
    return size


def export_study(
    client: RpcClient,
    exporter: SigningKey,
    encryption: EncryptionPrivateKey,
    study_id: str,
    secret: bytes,
    out: Path,
) -> ExportResult:
    """Build, check, anchor and write one export of ``study_id`` into the new directory ``out``."""
    if out.exists():
        raise ExportRefused(f"{out} exists: an export goes into a new directory")
    study = client.call("research.study", study_id=study_id)
    if not study["open"]:
        raise ExportRefused(f"study {study_id} is not open (approved, within its period, its organisation in force)")
    left_out: Counter[str] = Counter()
    patients, time_ms = _collect(client, exporter, encryption, study_id, left_out)
    if not patients:
        raise ExportRefused(f"no consenting patient's records could be read for study {study_id}")
    export_year = datetime.datetime.fromtimestamp(time_ms / 1000, datetime.UTC).year
    people, resources = _build(patients, Pseudonyms(secret, study_id), export_year)
    size = _check_k(people, study["terms"]["k_anonymity"])
    files = {PATIENTS: _ndjson([person.resource for person in people]), RESOURCES: _ndjson(resources)}
    manifest = {
        "study_id": study_id,
        "organisation": study["organisation"],
        "deidentification": study["terms"]["deidentification"],
        "k_anonymity": study["terms"]["k_anonymity"],
        "smallest_class": size,
        "quasi_identifiers": ["year of birth (90+ grouped)", "sex", "three-digit ZIP"],
        "ledger_time_ms": time_ms,
        "patients": len(people),
        "records": len(resources),
        "left_out": dict(sorted(left_out.items())),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    digest = hashlib.sha256(manifest_bytes).digest()
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700, parents=True)
    for name, data in {**files, MANIFEST: manifest_bytes}.items():
        (staging / name).write_bytes(data)
    ids = tuple(sorted(each.patient for each in patients))
    try:
        answer = submit(client, exporter, "research.export", ResearchExport(study_id, digest, len(resources), ids))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / ANCHOR).write_text(json.dumps({"tx_id": answer["tx_id"], "height": answer["height"]}) + "\n")
    staging.rename(out)
    return ExportResult(study_id, out, digest.hex(), len(people), len(resources), size, dict(left_out), answer["tx_id"])
