"""Suspect products (DSCSA section 582): quarantine, investigation, a determination, and
notice of an illegitimate product within 24 hours.

Theory of operation. The holder of loose packs it has reason to suspect (a failed
verification, a damaged seal, a dubious seller) opens a case with
``supply.suspect.quarantine``; the case's id is that transaction's id, and the case
belongs to that organisation alone, which takes it through the steps:

    step (transaction)              from            to             next step due (ledger time)
    supply.suspect.quarantine       -               quarantined    investigation: INVESTIGATE_DUE_MS
    supply.suspect.investigate      quarantined     investigating  determination: DETERMINE_DUE_MS
    supply.suspect.clear            investigating   cleared        -  (packs released)
    supply.suspect.illegitimate     investigating   illegitimate   notice: NOTIFY_DUE_MS (24 h, the statute)
    supply.suspect.notify           illegitimate    notified       -  (packs stay quarantined)

A quarantined pack is never shipped (loose or in a container), packed or dispensed;
it may still be decommissioned, which is what becomes of an illegitimate product. The
24-hour notice is the law; the investigation deadlines are this ledger's defaults,
stated so that a case left open shows as overdue: ``overdue`` compares a case's due
time with ledger time, never a clock. A late step is still taken, and recorded as late.
An illegitimate determination raises an alert for every pack; the notice names the
trading partners told (organisations in force) besides FDA, and the case's
``form_3911`` fields are exported by ``form_3911``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from p2pmed.ledger.contracts.identity import organisation_in_force
from p2pmed.ledger.contracts.supply import limits
from p2pmed.ledger.contracts.supply._codes import DAY_MS, check_reason, check_refs, pack_name, short
from p2pmed.ledger.contracts.supply._model import PackRef
from p2pmed.ledger.contracts.supply._store import add_alert, held_pack, pack_path, require_organisation
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = [
    "CLASSIFICATIONS",
    "DETERMINE_DUE_MS",
    "INVESTIGATE_DUE_MS",
    "NOTIFY_DUE_MS",
    "SUSPECT_TX_TYPES",
    "SuspectCase",
    "SuspectClear",
    "SuspectIllegitimate",
    "SuspectInvestigate",
    "SuspectNotify",
    "SuspectQuarantine",
    "SuspectStep",
    "overdue",
    "quarantine_of",
    "refuse_quarantined",
    "suspect_case",
    "suspect_cases",
    "suspect_count",
]

HOUR_MS = 3_600_000
INVESTIGATE_DUE_MS = 1 * DAY_MS
DETERMINE_DUE_MS = 10 * DAY_MS
NOTIFY_DUE_MS = 24 * HOUR_MS
DESCRIPTION_LENGTH_MAX = 2000
PARTNERS_MAX = 64
CASE_ID_SIZE = 32
CLASSIFICATIONS = (
    "counterfeit",
    "diverted",
    "stolen",
    "intentional-adulteration",
    "unfit-for-distribution",
    "fraudulent-transaction",
)
"""Form FDA 3911 field 5, the kinds of illegitimate product DSCSA names."""

_NEXT_DUE = {"quarantined": INVESTIGATE_DUE_MS, "investigating": DETERMINE_DUE_MS, "illegitimate": NOTIFY_DUE_MS}
_NEXT_STEP = {"quarantined": "investigate", "investigating": "determine", "illegitimate": "notify"}


@dataclass(frozen=True)
class SuspectQuarantine:
    packs: tuple[PackRef, ...]
    reason: str


@dataclass(frozen=True)
class SuspectInvestigate:
    case: bytes


@dataclass(frozen=True)
class SuspectClear:
    case: bytes
    reason: str


@dataclass(frozen=True)
class SuspectIllegitimate:
    case: bytes
    classification: str
    description: str


@dataclass(frozen=True)
class SuspectNotify:
    """FDA and ``partners`` (organisation ids: the immediate trading partners) were told."""

    case: bytes
    partners: tuple[bytes, ...]


@dataclass(frozen=True)
class SuspectStep:
    """A step taken: when, by which transaction, and whether after its due time."""

    height: int
    time_ms: int
    tx_id: bytes
    late: bool


@dataclass(frozen=True)
class SuspectCase:
    id: bytes
    organisation: bytes
    packs: tuple[PackRef, ...]
    reason: str
    status: str
    """quarantined, investigating, cleared, illegitimate or notified."""
    due_ms: int | None
    """When the next step is due; None once the case is closed."""
    quarantined: SuspectStep
    investigated: SuspectStep | None
    determined: SuspectStep | None
    classification: str | None
    description: str
    """Why it was cleared, or what made it illegitimate (Form 3911 field 17)."""
    notified: SuspectStep | None
    partners: tuple[bytes, ...]


def _case_key(case_id: bytes) -> str:
    return f"supply/suspect/{case_id.hex()}"


_COUNT_KEY = "supply/suspects"


def _index_key(index: int) -> str:
    return f"supply/suspect-at/{index:012d}"


def _quarantine_key(ref: PackRef) -> str:
    return f"supply/quarantine/{pack_path(ref)}"


def quarantine_of(state: StateReader, ref: PackRef) -> bytes | None:
    """The case that holds the pack in quarantine, if any."""
    return StateOverlay(state).get(bytes, _quarantine_key(ref))


def refuse_quarantined(state: StateReader, ref: PackRef, action: str) -> None:
    case = quarantine_of(state, ref)
    if case is not None:
        raise TxRejected(
            RejectReason.INVALID,
            f"{pack_name(ref)} is quarantined as a suspect product (case {case.hex()}): nobody can {action} it"
            " until the case clears it",
        )


def _check_text(text: str, what: str, length_max: int) -> None:
    if not 0 < len(text) <= length_max or not text.isprintable():
        raise TxRejected(RejectReason.INVALID, f"the {what} must be 1..{length_max} printable characters")


def _step(context: TxContext, case: SuspectCase | None) -> SuspectStep:
    late = case is not None and case.due_ms is not None and context.time_ms > case.due_ms
    return SuspectStep(context.height, context.time_ms, context.tx_id, late)


def apply_quarantine(state: StateOverlay, context: TxContext, body: SuspectQuarantine) -> None:
    holder = require_organisation(state, context, "quarantines packs")
    check_refs(body.packs, "packs")
    check_reason(body.reason)
    for ref in body.packs:
        held_pack(state, holder, ref, "quarantine")
        refuse_quarantined(state, ref, "quarantine")
        state.put(_quarantine_key(ref), context.tx_id)
    opened = _step(context, None)
    due_ms = context.time_ms + INVESTIGATE_DUE_MS
    case = SuspectCase(
        context.tx_id, holder, body.packs, body.reason, "quarantined", due_ms, opened, None, None, None, "", None, ()
    )
    state.put(_case_key(context.tx_id), case)
    count = state.get(int, _COUNT_KEY) or 0
    state.put(_index_key(count), context.tx_id)
    state.put(_COUNT_KEY, count + 1)


def _own_case(state: StateOverlay, context: TxContext, case_id: bytes, step: str, status: str) -> SuspectCase:
    """The sender's case, in ``status``; else refuse."""
    organisation = require_organisation(state, context, "takes a suspect case's steps")
    if len(case_id) != CASE_ID_SIZE:
        raise TxRejected(RejectReason.INVALID, f"a case id is the {CASE_ID_SIZE}-byte id of its quarantine")
    case = state.get(SuspectCase, _case_key(case_id))
    if case is None:
        raise TxRejected(RejectReason.INVALID, f"no suspect case has id {case_id.hex()}")
    if case.organisation != organisation:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"case {case_id.hex()} belongs to {short(case.organisation)}, which quarantined its packs: only it takes"
            " the case's steps",
        )
    if case.status != status:
        raise TxRejected(
            RejectReason.INVALID, f"case {case_id.hex()} is {case.status}; to be {step} it must be {status}"
        )
    return case


def _due(status: str, time_ms: int) -> int | None:
    return time_ms + _NEXT_DUE[status] if status in _NEXT_DUE else None


def apply_investigate(state: StateOverlay, context: TxContext, body: SuspectInvestigate) -> None:
    case = _own_case(state, context, body.case, "investigated", "quarantined")
    status = "investigating"
    investigated = _step(context, case)
    state.put(
        _case_key(case.id),
        replace(case, status=status, due_ms=_due(status, context.time_ms), investigated=investigated),
    )


def apply_clear(state: StateOverlay, context: TxContext, body: SuspectClear) -> None:
    case = _own_case(state, context, body.case, "cleared", "investigating")
    check_reason(body.reason)
    for ref in case.packs:
        assert quarantine_of(state, ref) == case.id, "a case's packs stay in its quarantine until it closes"
        state.delete(_quarantine_key(ref))
    determined = _step(context, case)
    cleared = replace(case, status="cleared", due_ms=None, determined=determined, description=body.reason)
    state.put(_case_key(case.id), cleared)


def apply_illegitimate(state: StateOverlay, context: TxContext, body: SuspectIllegitimate) -> None:
    case = _own_case(state, context, body.case, "determined illegitimate", "investigating")
    if body.classification not in CLASSIFICATIONS:
        raise TxRejected(
            RejectReason.INVALID,
            f"unknown classification {body.classification[:40]!r}; Form FDA 3911 knows: {', '.join(CLASSIFICATIONS)}",
        )
    _check_text(body.description, "description", DESCRIPTION_LENGTH_MAX)
    status = "illegitimate"
    determined = _step(context, case)
    state.put(
        _case_key(case.id),
        replace(
            case,
            status=status,
            due_ms=_due(status, context.time_ms),
            determined=determined,
            classification=body.classification,
            description=body.description,
        ),
    )
    for ref in case.packs:
        add_alert(
            state,
            context,
            case.organisation,
            f"illegitimate-{body.classification}",
            ref,
            f"case {case.id.hex()}: notify FDA and trading partners within 24 hours",
        )


def apply_notify(state: StateOverlay, context: TxContext, body: SuspectNotify) -> None:
    case = _own_case(state, context, body.case, "notified", "illegitimate")
    if not 0 < len(body.partners) <= PARTNERS_MAX or len(set(body.partners)) != len(body.partners):
        raise TxRejected(RejectReason.INVALID, f"name 1..{PARTNERS_MAX} distinct trading partners told")
    for partner in body.partners:
        if partner == case.organisation or organisation_in_force(state, partner) is None:
            raise TxRejected(
                RejectReason.INVALID,
                f"trading partner {short(partner)} is not another organisation in force: name it by its id",
            )
    notified = _step(context, case)
    state.put(
        _case_key(case.id), replace(case, status="notified", due_ms=None, notified=notified, partners=body.partners)
    )


def suspect_case(state: StateReader, case_id: bytes) -> SuspectCase | None:
    return StateOverlay(state).get(SuspectCase, _case_key(case_id))


def overdue(case: SuspectCase, now_ms: int) -> str | None:
    """The step that is overdue at ledger time ``now_ms``, if any."""
    if case.due_ms is None or now_ms <= case.due_ms:
        return None
    return _NEXT_STEP[case.status]


def suspect_count(state: StateReader) -> int:
    return StateOverlay(state).get(int, _COUNT_KEY) or 0


def suspect_cases(state: StateReader, start: int = 0, limit: int = limits.ALERTS_PAGE_MAX) -> list[SuspectCase]:
    """Cases ``start``, ``start + 1``... in the order they were opened, at most ``min(limit, ALERTS_PAGE_MAX)``."""
    view = StateOverlay(state)
    end = min(suspect_count(state), max(start, 0) + min(max(limit, 0), limits.ALERTS_PAGE_MAX))
    ids = [view.get(bytes, _index_key(index)) for index in range(max(start, 0), end)]
    cases = [suspect_case(state, case_id) for case_id in ids if case_id is not None]
    return [case for case in cases if case is not None]


SUSPECT_TX_TYPES = (
    TxType("supply.suspect.quarantine", SuspectQuarantine, apply_quarantine),
    TxType("supply.suspect.investigate", SuspectInvestigate, apply_investigate),
    TxType("supply.suspect.clear", SuspectClear, apply_clear),
    TxType("supply.suspect.illegitimate", SuspectIllegitimate, apply_illegitimate),
    TxType("supply.suspect.notify", SuspectNotify, apply_notify),
)
