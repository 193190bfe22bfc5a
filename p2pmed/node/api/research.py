"""JSON-RPC methods for research studies: a study, who consents to it now and which of their
records it may read, and the exports that included a patient.

Reads only, like the other health methods: studies, consents and exports change by signed
transactions (``research.study.register``, ``consent.study``, ``research.export``). "Now" is
the latest block's time, as everywhere (``p2pmed.node.api.health``): an export built from
``research.participants`` uses the consents in force at the ledger's latest height, and the
ledger checks them again when the export's anchor commits.
"""

from __future__ import annotations

from typing import Any

from p2pmed.ledger.contracts.audit import audit_trail
from p2pmed.ledger.contracts.consent import study_participants
from p2pmed.ledger.contracts.records import record
from p2pmed.ledger.contracts.research import EXPORT_PATIENTS_MAX, exports_of
from p2pmed.ledger.contracts.studies import STUDY_ID_PATTERN, Study, study, study_digest, study_open
from p2pmed.node.api.health import plain
from p2pmed.node.api.port import NodePort
from p2pmed.rpc.errors import ErrorCode, RpcError
from p2pmed.rpc.params import Method, Param

__all__ = ["RECORDS_PER_PATIENT_MAX", "research_methods"]

RECORDS_PER_PATIENT_MAX = 1_000
ID_SIZE = 32


def _study_id(method: str, value: str) -> str:
    if STUDY_ID_PATTERN.fullmatch(value) is None:
        raise RpcError(
            ErrorCode.INVALID_PARAMS,
            f'{method}: "study_id" {value[:60]!r} is not a study id (3..40 capital letters, digits and "-",'
            " starting with a letter)",
        )
    return value


def research_methods(node: NodePort) -> dict[str, Method]:
    store = node.store

    def found_study(method: str, study_id: str) -> Study:
        found = study(store, _study_id(method, study_id))
        if found is None:
            raise RpcError(ErrorCode.NOT_FOUND, f"no study {study_id!r} is registered")
        return found

    async def get_study(params: dict[str, Any]) -> dict[str, Any]:
        """The study, its digest (what validators approve) and whether it is open now."""
        found = found_study("research.study", params["study_id"])
        rendered: dict[str, Any] = plain(found)
        is_open = study_open(store, found.study_id, node.ledger_time_ms) is not None
        return rendered | {"sha256": study_digest(found).hex(), "open": is_open}

    async def participants(params: dict[str, Any]) -> dict[str, Any]:
        """The patients consenting to the study now, each with their records the study may read:
        in its categories, not erased."""
        found = found_study("research.participants", params["study_id"])
        now_ms = node.ledger_time_ms
        patients = []
        for provision in study_participants(store, found.study_id, now_ms)[:EXPORT_PATIENTS_MAX]:
            written = audit_trail(
                store, "patient", provision.patient, limit=RECORDS_PER_PATIENT_MAX, kinds=frozenset({"record-write"})
            )
            anchors = (record(store, entry.record_id) for entry in written)
            records = [
                anchor.record_id.hex()
                for anchor in anchors
                if anchor is not None and anchor.erased_ms is None and anchor.category in found.terms.categories
            ]
            patients.append(
                {"patient": provision.patient.hex(), "consent_tx": provision.tx_id.hex(), "records": records}
            )
        return {"study_id": found.study_id, "time_ms": now_ms, "height": store.head()[0], "patients": patients}

    async def exports(params: dict[str, Any]) -> dict[str, Any]:
        """The research exports that included the patient, oldest first."""
        patient: bytes = params["patient"]
        if len(patient) != ID_SIZE:
            raise RpcError(ErrorCode.INVALID_PARAMS, f'research.exports: "patient" must be {2 * ID_SIZE} hex digits')
        limit = params["limit"]
        if not 1 <= limit <= 1000:
            raise RpcError(ErrorCode.INVALID_PARAMS, f'research.exports: "limit" must be 1..1000, got {limit}')
        return {"patient": patient.hex(), "exports": [plain(anchor) for anchor in exports_of(store, patient, limit)]}

    return {
        "research.study": Method(get_study, {"study_id": str}),
        "research.participants": Method(participants, {"study_id": str}),
        "research.exports": Method(exports, {"patient": bytes, "limit": Param(int, optional=True, default=100)}),
    }
