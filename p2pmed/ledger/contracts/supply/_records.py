"""EPCIS events the custody rules have no use for, kept on the ledger as their sender declared them.

An inspection, a storage move, a TransactionEvent linking packs to an invoice, a
TransformationEvent, an AssociationEvent: the supply rules do not act on them, but a
trading partner or an investigator wants to find them later, with who recorded them and
when. ``supply.epcis.record`` keeps one such event: its type, business step, time, the
packs and containers it names, and its JSON (at most ``EVENT_JSON_SIZE_MAX`` bytes). The
record's id is its transaction's id. The ledger attests who recorded what and when, not
that the event is true: it does not parse the JSON, it checks the fields it indexes.

Any organisation in force records events. A record is listed under each pack it names
that the sender holds or made (``pack_records``), the first ``RECORDS_PER_PACK_MAX`` of
them; the rest are counted only. Packs the sender neither holds nor made are kept in the
record but not listed under them, so nobody fills another's pack's list with noise.

Error declarations (EPCIS's corrections of earlier events) are not recorded: the rules
already acted on the events a declaration would correct, and a stored declaration the
rules ignore would read as a correction that never happened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from p2pmed.ledger.contracts.supply._codes import check_query, check_refs, check_ssccs
from p2pmed.ledger.contracts.supply._model import Pack, PackRef
from p2pmed.ledger.contracts.supply._store import pack_key, pack_path, require_organisation
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = [
    "EVENT_JSON_SIZE_MAX",
    "EVENT_TYPES",
    "RECORDS_PER_PACK_MAX",
    "RECORD_TX_TYPES",
    "EpcisRecord",
    "RecordedEvent",
    "biz_step_problem",
    "epcis_record",
    "pack_records",
]

EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransactionEvent", "TransformationEvent", "AssociationEvent")
EVENT_JSON_SIZE_MAX = 8192
RECORDS_PER_PACK_MAX = 32
_BIZ_STEP = re.compile(r"[A-Za-z0-9_:./#-]{0,120}")


@dataclass(frozen=True)
class EpcisRecord:
    """One EPCIS event to keep: ``biz_step`` is its CBV step without prefix ("" if none)."""

    event_type: str
    biz_step: str
    event_time_ms: int
    packs: tuple[PackRef, ...]
    containers: tuple[str, ...]
    event_json: str


@dataclass(frozen=True)
class RecordedEvent:
    """A kept event: the record and who kept it, when, in which transaction."""

    id: bytes
    organisation: bytes
    height: int
    time_ms: int
    record: EpcisRecord


@dataclass(frozen=True)
class _Listing:
    listed: int
    counted: int


def _record_key(record_id: bytes) -> str:
    return f"supply/epcis/{record_id.hex()}"


def _listing_key(ref: PackRef) -> str:
    return f"supply/epcis-pack/{pack_path(ref)}"


def _listed_key(ref: PackRef, index: int) -> str:
    return f"supply/epcis-pack/{pack_path(ref)}/{index:03d}"


def biz_step_problem(step: str) -> str | None:
    if not _BIZ_STEP.fullmatch(step):
        return f"business step {step[:40]!r} is not a CBV word or URI of at most 120 characters"
    return None


def _check(record: EpcisRecord) -> None:
    if record.event_type not in EVENT_TYPES:
        raise TxRejected(RejectReason.INVALID, f"event type {record.event_type[:40]!r} is not one of EPCIS 2.0's")
    problem = biz_step_problem(record.biz_step)
    if problem is not None:
        raise TxRejected(RejectReason.INVALID, problem)
    if record.event_time_ms < 0:
        raise TxRejected(RejectReason.INVALID, "an event time is at or after 1970-01-01T00:00Z")
    check_refs(record.packs, "packs", empty_ok=True)
    check_ssccs(record.containers, "containers")
    if len(record.event_json.encode()) > EVENT_JSON_SIZE_MAX:
        raise TxRejected(RejectReason.INVALID, f"the event's JSON is over {EVENT_JSON_SIZE_MAX} bytes")


def apply_record(state: StateOverlay, context: TxContext, record: EpcisRecord) -> None:
    organisation = require_organisation(state, context, "records EPCIS events")
    _check(record)
    state.put(
        _record_key(context.tx_id), RecordedEvent(context.tx_id, organisation, context.height, context.time_ms, record)
    )
    for ref in record.packs:
        found = state.get(Pack, pack_key(ref))
        if found is None or organisation not in (found.holder, found.manufacturer):
            continue
        listing = state.get(_Listing, _listing_key(ref)) or _Listing(0, 0)
        if listing.listed < RECORDS_PER_PACK_MAX:
            state.put(_listed_key(ref, listing.listed), context.tx_id)
            listing = _Listing(listing.listed + 1, listing.counted)
        state.put(_listing_key(ref), _Listing(listing.listed, listing.counted + 1))


def epcis_record(state: StateReader, record_id: bytes) -> RecordedEvent | None:
    return StateOverlay(state).get(RecordedEvent, _record_key(record_id))


def pack_records(state: StateReader, gtin: str, serial: str) -> tuple[list[RecordedEvent], int]:
    """The kept events listed under a pack, in order, and how many name it in all (listed or not);
    ValueError if malformed."""
    ref = check_query(gtin, serial)
    view = StateOverlay(state)
    listing = view.get(_Listing, _listing_key(ref)) or _Listing(0, 0)
    records = []
    for index in range(listing.listed):
        record_id = view.get(bytes, _listed_key(ref, index))
        assert record_id is not None, "a listing's entries are written with its count"
        found = epcis_record(view, record_id)
        assert found is not None, "a listed record is kept"
        records.append(found)
    return records, listing.counted


RECORD_TX_TYPES = (TxType("supply.epcis.record", EpcisRecord, apply_record),)
