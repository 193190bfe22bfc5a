"""The audit trail: one entry per consent change, record write, read, break-glass and erasure.

Entries are written by the rules that do those things, in the same overlay, so an
entry exists exactly when its event took effect. Each is stored under three
prefixes (by patient, by actor, by record) with the height and tx id in the key,
so every query is one ordered prefix scan; time ranges filter on the entry's
block time. ``p2pmed.interop`` exports entries as FHIR ``AuditEvent``.

Beside the entries, each index keeps how many entries it holds for a subject
(``count_key``). A compliance report (``p2pmed.consensus.report_bundle``) proves that
count in the same certified state as the entries it carries, so a report that claims
to hold a patient's whole trail can be checked to hold every entry, not only that each
entry it holds is real. The count grows only when an entry key is new: an event a
transaction records twice for one subject is one entry. ``NETWORK_COUNT_KEY`` counts the
entries of every patient together (each event has one patient), for a network-wide report.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2pmed import codec
from p2pmed.ledger.rules import TxContext
from p2pmed.ledger.state import STATE_VALUE_SIZE_MAX, ScanState, StateOverlay

__all__ = [
    "AUDIT_INDEXES",
    "AUDIT_KINDS",
    "NETWORK_COUNT_KEY",
    "AuditEntry",
    "audit_trail",
    "count_key",
    "entries_at",
    "entry_key",
    "entry_prefix",
    "index_prefix",
    "record_event",
]

AUDIT_KINDS = frozenset(
    {
        "consent-grant",
        "consent-revoke",
        "consent-deny",
        "consent-undeny",
        "consent-delegate",
        "consent-undelegate",
        "consent-study",
        "consent-study-withdraw",
        "record-write",
        "record-read",
        "record-read-refused",
        "break-glass",
        "break-glass-review",
        "record-erase",
        "research-export",
    }
)
AUDIT_INDEXES = ("patient", "actor", "record")
"""What an entry is kept by: its patient, its actor and (when it has one) its record."""


@dataclass(frozen=True)
class AuditEntry:
    kind: str
    patient: bytes
    actor: bytes  # the party id that acted (person id or organisation id)
    record_id: bytes  # empty when the event concerns no single record
    category: str
    purpose: str
    detail: str  # the break-glass reason, the grantee of a consent, ...
    time_ms: int
    height: int
    tx_id: bytes


def index_prefix(by: str) -> str:
    """The prefix of every entry key the index ``by`` keeps, for every subject."""
    return f"audit/{by}/"


def entry_prefix(by: str, subject: bytes) -> str:
    """The prefix of every entry key ``by`` keeps for ``subject``."""
    return f"{index_prefix(by)}{subject.hex()}/"


def entry_key(by: str, subject: bytes, height: int, tx_id: bytes) -> str:
    """The state key of the entry the transaction ``tx_id`` (at ``height``) made for ``subject``."""
    return f"{entry_prefix(by, subject)}{height:012d}/{tx_id.hex()}"


NETWORK_COUNT_KEY = "audit/count/network"
"""How many entries the patient index holds over all patients."""


def count_key(by: str, subject: bytes) -> str:
    """The state key of how many entries ``by`` keeps for ``subject`` (absent: none)."""
    return f"audit/count/{by}/{subject.hex()}"


def record_event(
    state: StateOverlay,
    context: TxContext,
    kind: str,
    patient: bytes,
    actor: bytes,
    record_id: bytes = b"",
    category: str = "",
    purpose: str = "",
    detail: str = "",
) -> None:
    assert kind in AUDIT_KINDS, kind
    entry = AuditEntry(
        kind, patient, actor, record_id, category, purpose, detail, context.time_ms, context.height, context.tx_id
    )
    for by, subject in zip(AUDIT_INDEXES, (patient, actor, record_id), strict=True):
        if subject:
            key = entry_key(by, subject, context.height, context.tx_id)
            if state.state_get(key) is None:
                _increment(state, count_key(by, subject))
                if by == "patient":
                    _increment(state, NETWORK_COUNT_KEY)
            state.put(key, entry)


def _increment(state: StateOverlay, key: str) -> None:
    state.put(key, (state.get(int, key) or 0) + 1)


def entries_at(state: ScanState, by: str, subject: bytes, height: int) -> list[AuditEntry]:
    """The entries for ``subject`` that the block at ``height`` made: one short prefix scan."""
    return [
        codec.decode(AuditEntry, data, STATE_VALUE_SIZE_MAX)
        for _key, data in state.state_items(f"audit/{by}/{subject.hex()}/{height:012d}/")
    ]


def audit_trail(
    state: ScanState,
    by: str,
    subject: bytes,
    since_ms: int = 0,
    until_ms: int | None = None,
    limit: int = 1000,
    kinds: frozenset[str] = AUDIT_KINDS,
) -> list[AuditEntry]:
    """Entries for ``subject`` (a patient, an actor or a record, as ``by`` says) of these
    ``kinds``, oldest first, with block time in ``[since_ms, until_ms)``, at most ``limit``."""
    if by not in AUDIT_INDEXES:
        raise ValueError(f"audit entries are kept by {', '.join(AUDIT_INDEXES)}, not by {by!r}")
    entries = []
    for _key, data in state.state_items(entry_prefix(by, subject)):
        entry = codec.decode(AuditEntry, data, STATE_VALUE_SIZE_MAX)
        if entry.kind in kinds and entry.time_ms >= since_ms and (until_ms is None or entry.time_ms < until_ms):
            entries.append(entry)
            if len(entries) >= limit:
                break
    return entries
