"""What a site writes to its local audit log (``p2pmed.store.audit_log``): what the ledger
never sees, because it happens at this site only.

- ``custody-refused``: this site's custodian refused a ``share``, ``sealed`` or ``copy``
  request: the validator whose node asked (``requester``), the request kind, the record
  asked for, from the signed read request if any the reader key, its record id and time,
  whether its signature verified, and the custodian's reason.
- ``trail-read``: the site's operator read a patient's audit trail (``audit.query`` by
  patient): the patient, the period, the limit and the format.
- ``suppressed``: a requester went over its budget; how many entries were left out and
  between which times. Written when that requester's next entry is, or when the node stops.
- ``log-recovered``: the log cut an unfinished line off after a crash (written by the log).

Budgets: each requester (a validator's key, or ``operator`` for this site's RPC) may add
``ENTRIES_PER_S`` entries a second, in bursts of ``ENTRIES_BURST``; beyond that its
entries are counted, not written. A validator may send a custodian 100 requests a second,
each refused, and nothing it sends makes this site write more than its budget; the
signature of a read request is checked only for an entry that is written. The log's
size cap bounds the rest.

Times are the node's wall clock: this is the node, not the ledger's rules. Every refusal,
logged or not, is counted by request kind (``refused``, for metrics), ``put`` included.
A write that fails (a full disk) is logged as an error and counted (``write_failures``);
the custodian still refuses, so nothing is served that should not be.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from p2pmed import codec
from p2pmed.crypto import SignatureDomain, verify
from p2pmed.interop.fhir import SiteEvent, site_audit_event
from p2pmed.net.blob_protocol import BlobRequest
from p2pmed.store.audit_log import FieldValue, LogEntry, SignedLog, read_entries
from p2pmed.token_bucket import PeerBudgets

__all__ = [
    "ENTRIES_BURST",
    "ENTRIES_PER_S",
    "LOG_FILE",
    "OPERATOR",
    "REASON_LENGTH_MAX",
    "SiteAudit",
    "fhir_event",
    "plain_entry",
]

log = structlog.get_logger(__name__)

LOG_FILE = "site-audit.log"
"""In the node's data directory, beside the store."""
ENTRIES_PER_S = 0.2
ENTRIES_BURST = 30
REASON_LENGTH_MAX = 400
OPERATOR = "operator"
ID_SIZE = 32
LOGGED_KINDS = ("share", "sealed", "copy")


@dataclass
class _Suppressed:
    count: int
    first_ms: int
    last_ms: int


class SiteAudit:
    def __init__(
        self,
        log: SignedLog,
        now_ms: Callable[[], int],
        chain_id: str,
        *,
        entries_per_s: float = ENTRIES_PER_S,
        entries_burst: int = ENTRIES_BURST,
    ) -> None:
        self.log, self.now_ms, self.chain_id = log, now_ms, chain_id
        self.refused: Counter[str] = Counter()
        self.write_failures = 0
        self._budgets: PeerBudgets[str] = PeerBudgets(entries_per_s, entries_burst)
        self._suppressed: dict[str, _Suppressed] = {}

    def custody_refused(self, request: BlobRequest, requester: bytes, reason: str) -> None:
        """The custodian refused ``request`` from the node of validator ``requester``."""
        self.refused[request.kind] += 1
        if request.kind not in LOGGED_KINDS or not self._within_budget(requester.hex()):
            return
        read = request.read
        fields: dict[str, FieldValue] = {
            "request": request.kind,
            "requester": requester.hex(),
            "record_id": _id_hex(request.record_id),
            "reader": None,
            "signed_record_id": None,
            "issued_ms": None,
            "signature_verified": None,
            "reason": reason[:REASON_LENGTH_MAX],
        }
        if read is not None:
            signed = read.request
            fields |= {
                "reader": _id_hex(signed.reader),
                "signed_record_id": _id_hex(signed.record_id),
                "issued_ms": signed.issued_ms,
                "signature_verified": verify(
                    signed.reader, read.signature, SignatureDomain.RECORD_FETCH, self.chain_id, codec.encode(signed)
                ),
            }
        self._append("custody-refused", fields)

    def trail_read(self, patient: bytes, since_ms: int, until_ms: int | None, limit: int, format: str) -> None:
        """The operator asked for ``patient``'s audit trail (``audit.query``)."""
        if self._within_budget(OPERATOR):
            fields: dict[str, FieldValue] = {
                "patient": patient.hex(),
                "since_ms": since_ms,
                "until_ms": until_ms,
                "limit": limit,
                "format": format,
            }
            self._append("trail-read", fields)

    def _within_budget(self, requester: str) -> bool:
        """Whether ``requester``'s entry is to be written; first the summary of what it had left out."""
        now_ms = self.now_ms()
        if self._budgets.take(requester, now_ms / 1000) > 0:
            left_out = self._suppressed.setdefault(requester, _Suppressed(0, now_ms, now_ms))
            left_out.count, left_out.last_ms = left_out.count + 1, now_ms
            return False
        self._write_summary(requester)
        return True

    def _write_summary(self, requester: str) -> None:
        left_out = self._suppressed.pop(requester, None)
        if left_out is not None:
            self._append(
                "suppressed",
                {
                    "requester": requester,
                    "count": left_out.count,
                    "first_ms": left_out.first_ms,
                    "last_ms": left_out.last_ms,
                },
            )

    def _append(self, kind: str, fields: dict[str, FieldValue]) -> None:
        try:
            self.log.append(kind, fields)
        except OSError as error:
            self.write_failures += 1
            log.error("site audit log write failed", kind=kind, path=str(self.log.path), error=str(error))

    def close(self) -> None:
        """Write the summaries still owed, so a stop does not hide what was left out."""
        for requester in list(self._suppressed):
            self._write_summary(requester)

    def entries(self, since_ms: int, limit: int) -> list[tuple[str, LogEntry]]:
        """Up to ``limit`` entries written at ``since_ms`` or later, oldest first, with their hashes.
        Reads the files: call it off the node's event loop."""
        found = []
        for sha256, entry in read_entries(self.log.path):
            if entry.time_ms >= since_ms:
                found.append((sha256, entry))
                if len(found) == limit:
                    break
        return found


def _id_hex(value: bytes) -> str:
    """An id or key from a peer's request as hex; one longer than any id, by its length only
    (a peer chooses these bytes, and must not choose how much this site writes)."""
    return value.hex() if len(value) <= ID_SIZE else f"({len(value)} bytes: not an id)"


def plain_entry(sha256: str, entry: LogEntry) -> dict[str, Any]:
    return {"sha256": sha256, **codec.to_value(entry)}


def _hex_field(fields: dict[str, FieldValue], name: str) -> bytes | None:
    value = fields.get(name)
    if not isinstance(value, str):
        return None
    try:
        decoded = bytes.fromhex(value)
    except ValueError:
        return None
    return decoded if len(decoded) == 32 else None


def fhir_event(sha256: str, entry: LogEntry, site: bytes) -> dict[str, Any]:
    """The entry as a FHIR R5 AuditEvent: a refusal has outcome failure."""
    fields = entry.fields
    details = tuple((name, str(value)) for name, value in sorted(fields.items()) if value is not None)
    event = SiteEvent(
        entry_sha256=sha256,
        kind=entry.kind,
        time_ms=entry.time_ms,
        site=site,
        agent=_hex_field(fields, "requester"),
        refused=entry.kind == "custody-refused" or (entry.kind == "suppressed" and fields.get("requester") != OPERATOR),
        record_id=_hex_field(fields, "record_id"),
        patient=_hex_field(fields, "patient"),
        details=details,
    )
    return site_audit_event(event)
