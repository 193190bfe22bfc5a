"""Research exports: each de-identified data set a study takes is anchored, and each patient
in it is told.

The exporting site builds the data set off the ledger (``p2pmed.client.research``): it reads
the consented patients' records for the study through the normal custody path (each read a
``record.read`` for the study, on the patient's trail), de-identifies them and checks
k-anonymity. It then anchors the export (``research.export``): the study, the SHA-256 of the
data set's manifest, how many records it holds, and the patients in it. The rule checks
again, at the block that orders it, that every patient named holds a consent in force to the
study (a patient who withdrew meanwhile makes the anchor fail, naming them, so the site
rebuilds without them), that the study is open and the signer acts for its organisation, and
that the data set has at least k patients (fewer cannot be k-anonymous). Each patient gets a
``research-export`` audit entry: the disclosure (purpose HRESCH, the study's organisation as
the recipient, the manifest's SHA-256) in their accounting of disclosures, and ``exports_of``
lists a patient's exports from it.

Patients are named sorted and distinct, at most ``EXPORT_PATIENTS_MAX`` per anchor, so an
anchor writes a bounded number of entries; a larger data set is exported in parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmed.crypto import PUBLIC_KEY_SIZE
from p2pmed.ledger.contracts import audit
from p2pmed.ledger.contracts.consent import study_consent
from p2pmed.ledger.contracts.studies import RESEARCH_PURPOSE, check_study_id, study_open, study_reader
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import ScanState, StateOverlay, StateReader

__all__ = ["EXPORT_PATIENTS_MAX", "TX_TYPES", "ExportAnchor", "ResearchExport", "export_anchor", "exports_of"]

EXPORT_PATIENTS_MAX = 1000
EXPORT_RECORDS_MAX = 1_000_000
SHA256_SIZE = 32


@dataclass(frozen=True)
class ResearchExport:
    study_id: str
    manifest_sha256: bytes
    records: int
    patients: tuple[bytes, ...]
    """The person ids of the patients in the data set, sorted, distinct."""


@dataclass(frozen=True)
class ExportAnchor:
    study_id: str
    organisation: bytes
    """The study's organisation: the recipient of the data set."""
    exporter: bytes
    manifest_sha256: bytes
    records: int
    patients: int
    time_ms: int
    height: int
    tx_id: bytes


def _export_key(tx_id: bytes) -> str:
    return f"research-export/{tx_id.hex()}"


def export_anchor(state: StateReader, tx_id: bytes) -> ExportAnchor | None:
    return StateOverlay(state).get(ExportAnchor, _export_key(tx_id))


def exports_of(state: ScanState, patient: bytes, limit: int = 1000) -> list[ExportAnchor]:
    """The research exports that included ``patient``, oldest first, from their audit trail."""
    entries = audit.audit_trail(state, "patient", patient, limit=limit, kinds=frozenset({"research-export"}))
    anchors = (export_anchor(state, entry.tx_id) for entry in entries)
    return [anchor for anchor in anchors if anchor is not None]


def _check_patients(state: StateReader, context: TxContext, export: ResearchExport, k: int) -> None:
    patients = export.patients
    if not k <= len(patients) <= EXPORT_PATIENTS_MAX:
        raise TxRejected(
            RejectReason.INVALID,
            f"an export names {k}..{EXPORT_PATIENTS_MAX} patients: at least the study's k, since fewer cannot be"
            f" {k}-anonymous; {len(patients)} given",
        )
    if any(len(patient) != PUBLIC_KEY_SIZE for patient in patients) or list(patients) != sorted(set(patients)):
        raise TxRejected(RejectReason.INVALID, "patients are 32-byte person ids, sorted and distinct")
    for patient in patients:
        if study_consent(state, patient, export.study_id, context.time_ms) is None:
            raise TxRejected(
                RejectReason.NOT_AUTHORISED,
                f"patient {patient.hex()} has no consent in force to study {export.study_id} (withdrawn?):"
                " rebuild the data set without them",
            )


def apply_export(state: StateOverlay, context: TxContext, export: ResearchExport) -> None:
    check_study_id(export.study_id)
    opened = study_open(state, export.study_id, context.time_ms)
    if opened is None:
        raise TxRejected(RejectReason.INVALID, f"no approved study {export.study_id} is open at this block's time")
    exporter = study_reader(state, context.sender, opened)
    if exporter is None:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED, f"only study {export.study_id}'s organisation or its researchers export for it"
        )
    if len(export.manifest_sha256) != SHA256_SIZE or not 0 < export.records <= EXPORT_RECORDS_MAX:
        raise TxRejected(
            RejectReason.INVALID, f"give the manifest's 32-byte SHA-256 and 1..{EXPORT_RECORDS_MAX} records"
        )
    _check_patients(state, context, export, opened.terms.k_anonymity)
    anchor = ExportAnchor(
        opened.study_id,
        opened.organisation,
        exporter,
        export.manifest_sha256,
        export.records,
        len(export.patients),
        context.time_ms,
        context.height,
        context.tx_id,
    )
    state.put(_export_key(context.tx_id), anchor)
    detail = (
        f"study {opened.study_id}: de-identified data set, manifest sha256 {export.manifest_sha256.hex()},"
        f" to organisation {opened.organisation.hex()}"
    )
    for patient in export.patients:
        audit.record_event(
            state,
            context,
            "research-export",
            patient,
            exporter,
            category=",".join(opened.terms.categories),
            purpose=RESEARCH_PURPOSE,
            detail=detail,
        )


TX_TYPES = (TxType("research.export", ResearchExport, apply_export),)
