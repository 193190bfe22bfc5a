"""Diversion flags on the ledger: raised with evidence the ledger recomputes, reviewed and
closed by a transaction of an overseer; and the controlled-substance schedule of a product.

Theory of operation. The signals (``_signals``) are pure functions of committed state and
ledger time, but they do not run on every block: a validator's node scans its committed
state off the consensus path (``candidates``) and sends ``supply.flag.raise`` naming a
subject. The ledger recomputes the subject's evidence at the block's time, at a bounded
cost (``_signals``), and records the flag only if the signal fires; a flag that does not
recompute is refused and changes nothing. So the cost of flagging is paid per flag, by
a signed transaction of an overseer, never per block nor per supply event, and no one can
make a block dear by sending many supply events; and a Byzantine validator can raise only
flags that the counts support, while any honest validator can raise those a Byzantine one
keeps quiet about.

Overseers are the validators (the governing sites) and organisations of kind
``regulator`` (a board of pharmacy, FDA, a national competent authority), which the
validators admit by the usual 2f+1 vote. Nobody oversees itself: an overseer whose
organisation is the flagged site (or the other end of a custody gap) may not raise,
review or close that flag. The lifecycle:

    step (transaction)       from            to
    supply.flag.raise        -               open
    supply.flag.review       open            under-review
    supply.flag.close        under-review    closed, with a finding (FINDINGS) and a note

One subject is flagged once; while a flag is open or under review for a rule, site and
product (or shipment), no other is raised for them, so a pattern that lasts for weeks is
one flag, not one a week.

``supply.product.schedule``: the GTIN's maker (the organisation that owns it) declares it a
controlled substance of a schedule (DEA's CI..CV). It may change the schedule, never drop it:
a maker has reason to want its product watched less, and descheduling is rare enough to
take a new GTIN.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from p2pmed.ledger.contracts.identity import organisation_of
from p2pmed.ledger.contracts.supply import limits
from p2pmed.ledger.contracts.supply._codes import check_reason, gtin_problem, require, short
from p2pmed.ledger.contracts.supply._signals import Evidence, FlagSubject, NoSignal, evidence
from p2pmed.ledger.contracts.supply._store import owner_key, require_organisation
from p2pmed.ledger.contracts.supply._tally import schedule_key, schedule_of
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = [
    "FINDINGS",
    "FLAG_TX_TYPES",
    "OVERSEER_KIND",
    "SCHEDULES",
    "Flag",
    "FlagClose",
    "FlagRaise",
    "FlagReview",
    "FlagStep",
    "ProductSchedule",
    "flag",
    "flag_count",
    "flag_of",
    "flags",
]

OVERSEER_KIND = "regulator"
FINDINGS = ("diversion-confirmed", "explained", "false-signal")
SCHEDULES = ("CI", "CII", "CIII", "CIV", "CV")
FLAG_ID_SIZE = 32


@dataclass(frozen=True)
class FlagRaise:
    subject: FlagSubject


@dataclass(frozen=True)
class FlagReview:
    flag: bytes


@dataclass(frozen=True)
class FlagClose:
    flag: bytes
    finding: str
    note: str


@dataclass(frozen=True)
class ProductSchedule:
    gtin: str
    schedule: str


@dataclass(frozen=True)
class FlagStep:
    """A step taken: when, by which transaction, by whom (a validator key or a regulator's id)."""

    height: int
    time_ms: int
    tx_id: bytes
    by: bytes


@dataclass(frozen=True)
class Flag:
    id: bytes
    """The id of the transaction that raised it."""
    index: int
    subject: FlagSubject
    evidence: Evidence
    status: str
    """open, under-review or closed."""
    raised: FlagStep
    reviewed: FlagStep | None
    closed: FlagStep | None
    finding: str | None
    note: str


_COUNT_KEY = "supply/flags"


def _flag_key(flag_id: bytes) -> str:
    return f"supply/flag/{flag_id.hex()}"


def _index_key(index: int) -> str:
    return f"supply/flag-at/{index:012d}"


def _topic(subject: FlagSubject) -> str:
    """What one open flag at a time covers: a rule, a site, a product, or a shipment."""
    return f"{subject.rule}/{subject.site.hex()}/{subject.product}/{subject.shipment.hex()}"


def _open_key(subject: FlagSubject) -> str:
    return f"supply/flag-open/{_topic(subject)}"


def _subject_key(subject: FlagSubject) -> str:
    return f"supply/flag-subject/{_topic(subject)}/{subject.week:06d}"


def _overseer(state: StateOverlay, context: TxContext, does: str) -> bytes:
    """Who the sender oversees as, its validator key or its regulator id; else refuse.
    Checked first, so that nobody else makes the ledger recompute evidence."""
    sender = organisation_of(state, context.sender)
    if context.sender in context.validators:
        return context.sender if sender is None else sender.id
    if sender is None or sender.kind != OVERSEER_KIND:
        raise TxRejected(RejectReason.NOT_AUTHORISED, f"only a validator or a {OVERSEER_KIND} {does}")
    return sender.id


def _refuse_party(context: TxContext, by: bytes, subject: FlagSubject, found: Evidence, does: str) -> None:
    """Nobody oversees itself: not the flagged site, nor a custody gap's destination."""
    parties = {subject.site, found.counterpart}
    if context.sender in parties or by in parties:
        raise TxRejected(RejectReason.NOT_AUTHORISED, f"a party to a flag never {does} about itself")


def _step(context: TxContext, by: bytes) -> FlagStep:
    return FlagStep(context.height, context.time_ms, context.tx_id, by)


def apply_raise(state: StateOverlay, context: TxContext, body: FlagRaise) -> None:
    subject = body.subject
    by = _overseer(state, context, "raises a diversion flag")
    try:
        found = evidence(state, subject, context.time_ms)
    except NoSignal as error:
        raise TxRejected(RejectReason.INVALID, f"the evidence does not recompute: {error}") from None
    _refuse_party(context, by, subject, found, "raises a diversion flag")
    if state.state_get(_subject_key(subject)) is not None:
        raise TxRejected(RejectReason.DUPLICATE, "this subject was already flagged")
    open_id = state.get(bytes, _open_key(subject))
    if open_id is not None:
        raise TxRejected(
            RejectReason.DUPLICATE, f"flag {open_id.hex()} is still open for this rule, site and product: review it"
        )
    index = flag_count(state)
    raised = Flag(context.tx_id, index, subject, found, "open", _step(context, by), None, None, None, "")
    state.put(_flag_key(context.tx_id), raised)
    state.put(_index_key(index), context.tx_id)
    state.put(_COUNT_KEY, index + 1)
    state.put(_subject_key(subject), context.tx_id)
    state.put(_open_key(subject), context.tx_id)


def _flag_in(state: StateOverlay, flag_id: bytes, status: str, step: str) -> Flag:
    if len(flag_id) != FLAG_ID_SIZE:
        raise TxRejected(RejectReason.INVALID, f"a flag id is the {FLAG_ID_SIZE}-byte id of the transaction raising it")
    found = flag(state, flag_id)
    if found is None:
        raise TxRejected(RejectReason.INVALID, f"no diversion flag has id {flag_id.hex()}")
    if found.status != status:
        raise TxRejected(
            RejectReason.INVALID, f"flag {flag_id.hex()} is {found.status}; to be {step} it must be {status}"
        )
    return found


def apply_review(state: StateOverlay, context: TxContext, body: FlagReview) -> None:
    by = _overseer(state, context, "reviews a diversion flag")
    found = _flag_in(state, body.flag, "open", "reviewed")
    _refuse_party(context, by, found.subject, found.evidence, "reviews a diversion flag")
    state.put(_flag_key(found.id), replace(found, status="under-review", reviewed=_step(context, by)))


def apply_close(state: StateOverlay, context: TxContext, body: FlagClose) -> None:
    by = _overseer(state, context, "closes a diversion flag")
    found = _flag_in(state, body.flag, "under-review", "closed")
    _refuse_party(context, by, found.subject, found.evidence, "closes a diversion flag")
    if body.finding not in FINDINGS:
        raise TxRejected(RejectReason.INVALID, f"unknown finding {body.finding[:40]!r}; known: {', '.join(FINDINGS)}")
    check_reason(body.note)
    closed = replace(found, status="closed", closed=_step(context, by), finding=body.finding, note=body.note)
    state.put(_flag_key(found.id), closed)
    state.delete(_open_key(found.subject))


def apply_schedule(state: StateOverlay, context: TxContext, body: ProductSchedule) -> None:
    maker = require_organisation(state, context, "declares a product's schedule", frozenset({"manufacturer"}))
    require(gtin_problem(body.gtin))
    if body.schedule not in SCHEDULES:
        raise TxRejected(RejectReason.INVALID, f"unknown schedule {body.schedule[:8]!r}; known: {', '.join(SCHEDULES)}")
    owner = state.get(bytes, owner_key(body.gtin))
    if owner != maker:
        holder = "nobody yet: commission it first" if owner is None else f"manufacturer {short(owner)}"
        raise TxRejected(
            RejectReason.NOT_AUTHORISED, f"GTIN {body.gtin} belongs to {holder}; only its maker schedules it"
        )
    if schedule_of(state, body.gtin) == body.schedule:
        raise TxRejected(RejectReason.DUPLICATE, f"GTIN {body.gtin} is already schedule {body.schedule}")
    state.put(schedule_key(body.gtin), body.schedule)


# -- queries ------------------------------------------------------------------------------------


def flag(state: StateReader, flag_id: bytes) -> Flag | None:
    return StateOverlay(state).get(Flag, _flag_key(flag_id))


def flag_of(state: StateReader, subject: FlagSubject) -> bytes | None:
    """The flag raised for exactly this subject, or for its rule, site and product while open."""
    view = StateOverlay(state)
    return view.get(bytes, _subject_key(subject)) or view.get(bytes, _open_key(subject))


def flag_count(state: StateReader) -> int:
    return StateOverlay(state).get(int, _COUNT_KEY) or 0


def flags(state: StateReader, start: int = 0, limit: int = limits.ALERTS_PAGE_MAX) -> list[Flag]:
    """Flags ``start``, ``start + 1``... in the order raised, at most ``min(limit, ALERTS_PAGE_MAX)``."""
    view = StateOverlay(state)
    end = min(flag_count(state), max(start, 0) + min(max(limit, 0), limits.ALERTS_PAGE_MAX))
    ids = [view.get(bytes, _index_key(index)) for index in range(max(start, 0), end)]
    return [found for flag_id in ids if flag_id is not None and (found := flag(state, flag_id)) is not None]


FLAG_TX_TYPES = (
    TxType("supply.flag.raise", FlagRaise, apply_raise),
    TxType("supply.flag.review", FlagReview, apply_review),
    TxType("supply.flag.close", FlagClose, apply_close),
    TxType("supply.product.schedule", ProductSchedule, apply_schedule),
)
