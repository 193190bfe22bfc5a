"""Drug supply chain: serialised packs followed from commissioning to dispensing,
after GS1 EPCIS 2.0 and its Core Business Vocabulary.

A pack is named as GS1 names it: a GTIN-14 (14 digits, the last one the GS1
mod-10 check digit) and a serial number (AI 21: 1..20 characters of GS1 character
set 82). Every transaction is signed by an organisation in force, the acting party.
Organisations are named by id (the key they were admitted with): holders,
manufacturers, shipment ends, history entries and alerts keep the id, so custody
stays continuous when an organisation rotates its keys.

- ``supply.commission``: a manufacturer commissions 1..1000 serials of one GTIN
  and lot. The expiry is an ISO date (``YYYY-MM-DD``, as EPCIS
  ``itemExpirationDate``): the pack may be dispensed until the end of that day, UTC.
  The first manufacturer to commission a GTIN owns it (the brand owner): nobody
  else commissions or recalls it. A lot keeps the expiry it was first commissioned
  with. Each pack starts in its manufacturer's custody.
- ``supply.ship``: the holder ships packs to another organisation in force. The
  shipment's id is the transaction's id; its packs are in transit, still held by
  the shipper, until the destination receives them. Custody is continuous: only
  the holder ships, and the holder is always the last organisation that received
  the pack (or its manufacturer).
- ``supply.receive``: the destination receives a shipment once, listing the packs
  that arrived and those that did not (``missing``); together they must be exactly
  the shipment, so a shortfall is declared, never implied. Arrived packs pass into
  the receiver's custody; missing ones stay missing for good, each with an alert
  (a possible diversion).
- ``supply.dispense``: a pharmacy or hospital dispenses packs it holds, each once,
  unless recalled or expired at the block's time. The patient is not named: who
  takes which medicine is health data and stays at the pharmacy.
- ``supply.decommission``: the holder takes packs out of circulation, for a reason.
- ``supply.recall``: the GTIN's manufacturer recalls a lot or listed serials.
  Recalled packs are never dispensed and are shipped only back to their
  manufacturer; they are still received and decommissioned.
- ``supply.verify``: any organisation records a scan of a pack: the four elements
  of its DSCSA product identifier (GTIN, serial, lot, expiry), all of which must
  match what was commissioned (a copied serial on another lot or expiry is a suspect
  product). It is refused only for a malformed code or an unauthorised sender,
  because a refused transaction records nothing and an unknown serial is exactly
  what must be recorded. A scan whose verdict is alarming (``ALERT_STATUSES``: an
  unknown serial is a suspect counterfeit) also adds an entry to the alert log.

Alerts are raised too when a pack is decommissioned as stolen or lost, and when a
dispense is refused because a pack was already dispensed, decommissioned or
reported missing (a second pack bearing that serial is at the counter: a clone).

State per pack is one small ``Pack``; its history is a list of keyed entries, and
bounded: a pack is shipped at most ``SHIPMENTS_PER_PACK_MAX`` times and its first
``SCANS_LISTED_MAX`` scans are listed (later ones are only counted). A recall is
one entry on the pack or the lot, and ``trace`` lists it after the pack's events of
the same block. The queries (``pack``, ``shipment``, ``shipment_of``, ``trace``,
``verify``, ``alerts``, ``alert_count``) read a state for the RPC layer.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, replace
from typing import TypedDict, Unpack

from p2pmed.ledger.contracts.identity import organisation_in_force, organisation_of
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext, TxType
from p2pmed.ledger.state import ScanState, StateOverlay, StateReader

__all__ = [
    "ALERTS_PAGE_MAX",
    "ALERT_STATUSES",
    "DECOMMISSION_REASONS",
    "DISPENSER_KINDS",
    "LOT_PACKS_MAX",
    "PACKS_PER_TX_MAX",
    "SCANS_LISTED_MAX",
    "SHIPMENTS_PER_PACK_MAX",
    "TX_TYPES",
    "VERDICT_STATUSES",
    "Alert",
    "Lot",
    "Pack",
    "PackEvent",
    "PackRef",
    "Recall",
    "Receipt",
    "Shipment",
    "SupplyCommission",
    "SupplyDecommission",
    "SupplyDispense",
    "SupplyRecall",
    "SupplyReceive",
    "SupplyShip",
    "SupplyVerify",
    "Verdict",
    "alert_count",
    "alerts",
    "code_problem",
    "expiry_end_ms",
    "expiry_problem",
    "gs1_check_digit",
    "gtin_problem",
    "lot_packs",
    "lot_record",
    "pack",
    "shipment",
    "shipment_of",
    "trace",
    "verify",
]

PACKS_PER_TX_MAX = 1000
SHIPMENTS_PER_PACK_MAX = 50
SCANS_LISTED_MAX = 32
# commission + (ship + receive or missing) per shipment + dispense or decommission + scans
HISTORY_LENGTH_MAX = 1 + 2 * SHIPMENTS_PER_PACK_MAX + 1 + SCANS_LISTED_MAX
ALERTS_PAGE_MAX = 1000
CODE_LENGTH_MAX = 20
REASON_LENGTH_MAX = 200
DAY_MS = 86_400_000
SHIPMENT_ID_SIZE = 32

DISPENSER_KINDS = frozenset({"pharmacy", "hospital"})
DECOMMISSION_REASONS = frozenset({"damaged", "destroyed", "expired", "lost", "other", "sample", "stolen"})

GENUINE = "genuine-dispensable"
UNKNOWN = "unknown-suspect-counterfeit"
RECALLED = "recalled"
DISPENSED = "already-dispensed"
DECOMMISSIONED = "decommissioned"
MISSING = "missing-in-transit"
EXPIRED = "expired"
IN_TRANSIT = "in-transit"
NOT_HELD_HERE = "not-held-here"
MISMATCH = "mismatch-suspect"
VERDICT_STATUSES = (
    GENUINE,
    UNKNOWN,
    MISMATCH,
    RECALLED,
    DISPENSED,
    DECOMMISSIONED,
    MISSING,
    EXPIRED,
    IN_TRANSIT,
    NOT_HELD_HERE,
)
ALERT_STATUSES = frozenset({UNKNOWN, MISMATCH, RECALLED, DISPENSED, DECOMMISSIONED, MISSING})
ALERTING_DECOMMISSIONS = frozenset({"stolen", "lost"})
"""Decommission reasons that raise an alert: packs out of the legitimate chain."""
CLONE_STATUSES = frozenset({"dispensed", "decommissioned", "missing"})
"""A pack in one of these states presented for dispensing again is a clone of it."""

# GS1 AI encodable character set 82, used by AI 10 (lot) and AI 21 (serial).
_CODE = re.compile(r"[!\"%&'()*+,\-./0-9:;<=>?A-Z_a-z]+")
_GTIN = re.compile(r"[0-9]{14}")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


# -- bodies -------------------------------------------------------------------------


@dataclass(frozen=True)
class PackRef:
    gtin: str
    serial: str


@dataclass(frozen=True)
class SupplyCommission:
    gtin: str
    lot: str
    expiry: str
    serials: tuple[str, ...]


@dataclass(frozen=True)
class SupplyShip:
    destination: bytes
    packs: tuple[PackRef, ...]


@dataclass(frozen=True)
class SupplyReceive:
    shipment: bytes
    packs: tuple[PackRef, ...]
    missing: tuple[PackRef, ...]


@dataclass(frozen=True)
class SupplyDispense:
    packs: tuple[PackRef, ...]


@dataclass(frozen=True)
class SupplyDecommission:
    packs: tuple[PackRef, ...]
    reason: str


@dataclass(frozen=True)
class SupplyRecall:
    """A recall of one ``lot`` of ``gtin``, or (``lot`` None) of listed ``serials``."""

    gtin: str
    lot: str | None
    serials: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class SupplyVerify:
    gtin: str
    serial: str
    lot: str
    expiry: str


# -- state ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recall:
    organisation: bytes
    height: int
    time_ms: int
    tx_id: bytes
    reason: str


@dataclass(frozen=True)
class Pack:
    """A commissioned pack as the ledger keeps it."""

    gtin: str
    serial: str
    lot: str
    manufacturer: bytes
    holder: bytes
    status: str
    """held, in-transit, dispensed, decommissioned or missing."""
    shipment: bytes | None
    """The shipment it is in transit in."""
    recall: Recall | None
    """A recall of this serial (a lot's recall is on its ``Lot``)."""
    shipments: int
    status_event: int
    """The history entry that set ``status`` and ``holder``."""


@dataclass(frozen=True)
class Lot:
    expiry: str
    recall: Recall | None


@dataclass(frozen=True)
class Receipt:
    height: int
    time_ms: int
    tx_id: bytes
    missing: tuple[PackRef, ...]


@dataclass(frozen=True)
class Shipment:
    id: bytes
    source: bytes
    destination: bytes
    packs: tuple[PackRef, ...]
    height: int
    time_ms: int
    receipt: Receipt | None


@dataclass(frozen=True)
class PackEvent:
    """One entry of a pack's history; ``party`` is the other organisation of a
    ship (destination), receive or missing (source); ``detail`` is the shipment id
    (hex), the lot and expiry, a reason, or a scan's verdict status."""

    kind: str
    organisation: bytes
    height: int
    time_ms: int
    tx_id: bytes
    party: bytes | None
    detail: str


@dataclass(frozen=True)
class _History:
    length: int
    scans: int


@dataclass(frozen=True)
class Alert:
    index: int
    kind: str
    gtin: str
    serial: str
    organisation: bytes
    height: int
    time_ms: int
    tx_id: bytes
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The answer to "is this pack genuine and dispensable?": ``status`` is one of
    ``VERDICT_STATUSES``, ``message`` says it to a pharmacist."""

    status: str
    message: str
    gtin: str
    serial: str
    pack: Pack | None
    expiry: str | None

    @property
    def dispensable(self) -> bool:
        return self.status == GENUINE


# -- codes and dates ----------------------------------------------------------------


def gs1_check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit of ``digits`` (weights 3, 1, 3... from the right)."""
    total = sum(int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(reversed(digits)))
    return str(-total % 10)


def gtin_problem(gtin: str) -> str | None:
    """What is wrong with a GTIN-14, or None."""
    if not _GTIN.fullmatch(gtin):
        return f"GTIN {gtin[:40]!r} must be 14 digits (a GTIN-8, -12 or -13 padded with leading zeros)"
    if gtin[-1] != gs1_check_digit(gtin[:-1]):
        return f"GTIN {gtin} has a wrong check digit: expected {gs1_check_digit(gtin[:-1])}"
    return None


def code_problem(code: str, what: str) -> str | None:
    """What is wrong with a serial or a lot number, or None."""
    if not 0 < len(code) <= CODE_LENGTH_MAX or not _CODE.fullmatch(code):
        return (
            f"{what} {code[:40]!r} must be 1..{CODE_LENGTH_MAX} characters of GS1 set 82 "
            "(letters, digits, !\"%&'()*+,-./:;<=>?_)"
        )
    return None


def expiry_problem(expiry: str) -> str | None:
    """What is wrong with an expiry date, or None."""
    try:
        if _ISO_DATE.fullmatch(expiry):
            datetime.date.fromisoformat(expiry)
            return None
    except ValueError:
        pass
    return f"expiry {expiry[:40]!r} must be a date as YYYY-MM-DD"


def expiry_end_ms(expiry: str) -> int:
    """The first millisecond (UTC) at which a pack expiring on ``expiry`` has expired."""
    return (datetime.date.fromisoformat(expiry).toordinal() - _EPOCH_ORDINAL + 1) * DAY_MS


def _require(problem: str | None) -> None:
    if problem is not None:
        raise TxRejected(RejectReason.INVALID, problem)


def _check_refs(refs: tuple[PackRef, ...], what: str, empty_ok: bool = False) -> None:
    if not (0 if empty_ok else 1) <= len(refs) <= PACKS_PER_TX_MAX:
        raise TxRejected(RejectReason.INVALID, f"give {0 if empty_ok else 1}..{PACKS_PER_TX_MAX} {what}")
    for ref in refs:
        _require(gtin_problem(ref.gtin))
        _require(code_problem(ref.serial, "serial"))
    if len(set(refs)) != len(refs):
        raise TxRejected(RejectReason.INVALID, f"a pack is listed twice in {what}")


def _check_serials(serials: tuple[str, ...]) -> None:
    if not 0 < len(serials) <= PACKS_PER_TX_MAX:
        raise TxRejected(RejectReason.INVALID, f"give 1..{PACKS_PER_TX_MAX} serials")
    for serial in serials:
        _require(code_problem(serial, "serial"))
    if len(set(serials)) != len(serials):
        raise TxRejected(RejectReason.INVALID, "a serial is listed twice")


def _check_reason(reason: str) -> None:
    if not 0 < len(reason) <= REASON_LENGTH_MAX or not reason.isprintable():
        raise TxRejected(RejectReason.INVALID, f"the reason must be 1..{REASON_LENGTH_MAX} printable characters")


def _name(ref: PackRef) -> str:
    return f"pack (01){ref.gtin}(21){ref.serial}"


def _short(key: bytes) -> str:
    return key.hex()[:16]


# -- state keys ----------------------------------------------------------------------


def _escape(code: str) -> str:
    # Codes may hold "/", the key separator: escape it so no two keys collide.
    return code.replace("%", "%25").replace("/", "%2F")


def _path(ref: PackRef) -> str:
    return f"{ref.gtin}/{_escape(ref.serial)}"


def _pack_key(ref: PackRef) -> str:
    return f"supply/pack/{_path(ref)}"


def _history_key(ref: PackRef) -> str:
    return f"supply/history/{_path(ref)}"


def _event_key(ref: PackRef, index: int) -> str:
    return f"supply/event/{_path(ref)}/{index:04d}"


def _lot_key(gtin: str, lot: str) -> str:
    return f"supply/lot/{gtin}/{_escape(lot)}"


def _lot_members_prefix(gtin: str, lot: str) -> str:
    return f"supply/lot-pack/{gtin}/{_escape(lot)}/"


def _owner_key(gtin: str) -> str:
    return f"supply/gtin/{gtin}"


def _shipment_key(shipment_id: bytes) -> str:
    return f"supply/shipment/{shipment_id.hex()}"


_ALERT_COUNT_KEY = "supply/alerts"


def _alert_key(index: int) -> str:
    return f"supply/alert/{index:012d}"


# -- recording ------------------------------------------------------------------------


def _record(
    state: StateOverlay,
    context: TxContext,
    actor: bytes,
    ref: PackRef,
    kind: str,
    party: bytes | None,
    detail: str,
) -> int:
    """Append an event by the organisation ``actor`` (its id) to the pack's history; returns its index."""
    history = state.get(_History, _history_key(ref)) or _History(0, 0)
    assert history.length < HISTORY_LENGTH_MAX, "the shipment and scan limits bound every history"
    event = PackEvent(kind, actor, context.height, context.time_ms, context.tx_id, party, detail)
    state.put(_event_key(ref, history.length), event)
    state.put(_history_key(ref), _History(history.length + 1, history.scans))
    return history.length


def _record_scan(state: StateOverlay, context: TxContext, actor: bytes, ref: PackRef, status: str) -> None:
    history = state.get(_History, _history_key(ref)) or _History(0, 0)
    if history.scans < SCANS_LISTED_MAX:
        _record(state, context, actor, ref, "scan", None, status)
        history = replace(history, length=history.length + 1)
    state.put(_history_key(ref), replace(history, scans=history.scans + 1))


def _add_alert(state: StateOverlay, context: TxContext, actor: bytes, kind: str, ref: PackRef, detail: str) -> None:
    index = state.get(int, _ALERT_COUNT_KEY) or 0
    alert = Alert(index, kind, ref.gtin, ref.serial, actor, context.height, context.time_ms, context.tx_id, detail)
    state.put(_alert_key(index), alert)
    state.put(_ALERT_COUNT_KEY, index + 1)


# -- checks shared by the rules -------------------------------------------------------------


def _require_organisation(
    state: StateOverlay, context: TxContext, does: str, kinds: frozenset[str] | None = None
) -> bytes:
    """The id of the organisation in force that signs, if it may do this; else refuse."""
    organisation = organisation_of(state, context.sender)
    if organisation is None:
        raise TxRejected(RejectReason.NOT_AUTHORISED, f"only an organisation in force {does}")
    if kinds is not None and organisation.kind not in kinds:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"only a {' or '.join(sorted(kinds))} {does}; the sender is a {organisation.kind}",
        )
    return organisation.id


_ENDED = {
    "dispensed": "was already dispensed",
    "decommissioned": "was decommissioned",
    "missing": "was reported missing in transit",
}


def _held_pack(state: StateOverlay, holder: bytes, ref: PackRef, action: str, repeat: str = "") -> Pack:
    """The pack, if ``holder`` (the sender's organisation id) holds it and it is in circulation; ``repeat`` is the
    status this action gives, refused as a duplicate rather than as invalid."""
    found = state.get(Pack, _pack_key(ref))
    if found is None:
        raise TxRejected(
            RejectReason.INVALID,
            f"{_name(ref)} was never commissioned: a suspect counterfeit; record it with supply.verify",
        )
    if found.status in _ENDED:
        reason = RejectReason.DUPLICATE if found.status == repeat else RejectReason.INVALID
        raise TxRejected(reason, f"{_name(ref)} {_ENDED[found.status]}: nobody can {action} it now")
    if found.status == "in-transit":
        assert found.shipment is not None
        raise TxRejected(
            RejectReason.INVALID,
            f"{_name(ref)} is in transit in shipment {found.shipment.hex()}: its destination must receive it first",
        )
    if found.holder != holder:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"{_name(ref)} is held by {_short(found.holder)}, not by the sender: only its holder can {action} it",
        )
    return found


def _lot_of(state: StateReader, found: Pack) -> Lot:
    lot = StateOverlay(state).get(Lot, _lot_key(found.gtin, found.lot))
    assert lot is not None, "a pack's lot is written when the pack is commissioned"
    return lot


def _recall_of(state: StateReader, found: Pack) -> Recall | None:
    return found.recall or _lot_of(state, found).recall


class _PackChanges(TypedDict, total=False):
    holder: bytes
    status: str
    shipment: bytes | None
    shipments: int


def _move(state: StateOverlay, found: Pack, event: int, **changes: Unpack[_PackChanges]) -> None:
    state.put(_pack_key(PackRef(found.gtin, found.serial)), replace(found, status_event=event, **changes))


# -- commission ------------------------------------------------------------------------


def _claim_gtin(state: StateOverlay, manufacturer: bytes, gtin: str) -> None:
    owner = state.get(bytes, _owner_key(gtin))
    if owner is None:
        state.put(_owner_key(gtin), manufacturer)
    elif owner != manufacturer:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"GTIN {gtin} belongs to manufacturer {_short(owner)}, which alone commissions it",
        )


def _open_lot(state: StateOverlay, commission: SupplyCommission) -> None:
    lot = state.get(Lot, _lot_key(commission.gtin, commission.lot))
    if lot is None:
        state.put(_lot_key(commission.gtin, commission.lot), Lot(commission.expiry, None))
    elif lot.recall is not None:
        raise TxRejected(
            RejectReason.INVALID, f"lot {commission.lot!r} of GTIN {commission.gtin} was recalled: commission a new lot"
        )
    elif lot.expiry != commission.expiry:
        raise TxRejected(
            RejectReason.INVALID,
            f"lot {commission.lot!r} of GTIN {commission.gtin} expires on {lot.expiry}; a lot has one expiry",
        )


def apply_commission(state: StateOverlay, context: TxContext, commission: SupplyCommission) -> None:
    manufacturer = _require_organisation(state, context, "commissions packs", frozenset({"manufacturer"}))
    _require(gtin_problem(commission.gtin))
    _require(code_problem(commission.lot, "lot"))
    _require(expiry_problem(commission.expiry))
    if expiry_end_ms(commission.expiry) <= context.time_ms:
        raise TxRejected(RejectReason.INVALID, f"expiry {commission.expiry} has passed at this block's time")
    _check_serials(commission.serials)
    _claim_gtin(state, manufacturer, commission.gtin)
    _open_lot(state, commission)
    detail = f"lot {commission.lot}, expiry {commission.expiry}"
    for serial in commission.serials:
        ref = PackRef(commission.gtin, serial)
        if state.state_get(_pack_key(ref)) is not None:
            raise TxRejected(RejectReason.DUPLICATE, f"{_name(ref)} is already commissioned; serials are never reused")
        event = _record(state, context, manufacturer, ref, "commission", None, detail)
        state.put(
            _pack_key(ref),
            Pack(ref.gtin, serial, commission.lot, manufacturer, manufacturer, "held", None, None, 0, event),
        )
        state.put(_lot_members_prefix(ref.gtin, commission.lot) + _escape(serial), True)


# -- ship and receive ----------------------------------------------------------------------


def apply_ship(state: StateOverlay, context: TxContext, ship: SupplyShip) -> None:
    source = _require_organisation(state, context, "ships packs")
    if ship.destination == source:
        raise TxRejected(RejectReason.INVALID, "a shipment goes to another organisation, not to its sender")
    if organisation_in_force(state, ship.destination) is None:
        raise TxRejected(RejectReason.INVALID, "the destination is not an organisation in force: name it by its id")
    _check_refs(ship.packs, "packs")
    detail = f"shipment {context.tx_id.hex()}"
    for ref in ship.packs:
        found = _held_pack(state, source, ref, "ship")
        if _recall_of(state, found) is not None and ship.destination != found.manufacturer:
            raise TxRejected(
                RejectReason.INVALID, f"{_name(ref)} is recalled: it may only be shipped back to its manufacturer"
            )
        if found.shipments >= SHIPMENTS_PER_PACK_MAX:
            raise TxRejected(
                RejectReason.INVALID,
                f"{_name(ref)} has been shipped {SHIPMENTS_PER_PACK_MAX} times, the most a pack's history holds",
            )
        event = _record(state, context, source, ref, "ship", ship.destination, detail)
        _move(state, found, event, status="in-transit", shipment=context.tx_id, shipments=found.shipments + 1)
    state.put(
        _shipment_key(context.tx_id),
        Shipment(context.tx_id, source, ship.destination, ship.packs, context.height, context.time_ms, None),
    )


def _check_receipt_matches(receive: SupplyReceive, sent: Shipment) -> None:
    _check_refs(receive.packs, "packs", empty_ok=True)
    _check_refs(receive.missing, "missing packs", empty_ok=True)
    listed = set(receive.packs)
    for ref in receive.missing:
        if ref in listed:
            raise TxRejected(RejectReason.INVALID, f"{_name(ref)} is listed both as arrived and as missing")
    listed.update(receive.missing)
    expected = set(sent.packs)
    for ref in (*receive.packs, *receive.missing):
        if ref not in expected:
            raise TxRejected(RejectReason.INVALID, f"mismatch: {_name(ref)} is not in shipment {sent.id.hex()}")
    for ref in sent.packs:
        if ref not in listed:
            raise TxRejected(
                RejectReason.INVALID,
                f"mismatch: {_name(ref)} of the shipment is not listed; list it as missing if it did not arrive",
            )


def _in_transit(state: StateOverlay, ref: PackRef, sent: Shipment) -> Pack:
    found = state.get(Pack, _pack_key(ref))
    assert found is not None and found.status == "in-transit" and found.shipment == sent.id, (
        "nothing moves a pack in transit"
    )
    return found


def apply_receive(state: StateOverlay, context: TxContext, receive: SupplyReceive) -> None:
    receiver = _require_organisation(state, context, "receives shipments")
    if len(receive.shipment) != SHIPMENT_ID_SIZE:
        raise TxRejected(
            RejectReason.INVALID, f"a shipment id is the {SHIPMENT_ID_SIZE}-byte id of its supply.ship transaction"
        )
    sent = state.get(Shipment, _shipment_key(receive.shipment))
    if sent is None:
        raise TxRejected(RejectReason.INVALID, f"no shipment has id {receive.shipment.hex()}")
    if sent.destination != receiver:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"shipment {sent.id.hex()} goes to {_short(sent.destination)}, not to the sender",
        )
    if sent.receipt is not None:
        raise TxRejected(
            RejectReason.DUPLICATE, f"shipment {sent.id.hex()} was already received at height {sent.receipt.height}"
        )
    _check_receipt_matches(receive, sent)
    detail = f"shipment {sent.id.hex()}"
    for ref in receive.packs:
        event = _record(state, context, receiver, ref, "receive", sent.source, detail)
        _move(state, _in_transit(state, ref, sent), event, holder=receiver, status="held", shipment=None)
    for ref in receive.missing:
        event = _record(state, context, receiver, ref, "missing", sent.source, detail)
        _move(state, _in_transit(state, ref, sent), event, status="missing", shipment=None)
        _add_alert(
            state,
            context,
            receiver,
            MISSING,
            ref,
            f"{_name(ref)} did not arrive in {detail} from {_short(sent.source)}",
        )
    state.put(
        _shipment_key(sent.id),
        replace(sent, receipt=Receipt(context.height, context.time_ms, context.tx_id, receive.missing)),
    )


# -- dispense, decommission, recall ---------------------------------------------------------------


def apply_dispense(state: StateOverlay, context: TxContext, dispense: SupplyDispense) -> None:
    dispenser = _require_organisation(state, context, "dispenses packs", DISPENSER_KINDS)
    _check_refs(dispense.packs, "packs")
    for ref in dispense.packs:
        found = _held_pack(state, dispenser, ref, "dispense", repeat="dispensed")
        if _recall_of(state, found) is not None:
            raise TxRejected(
                RejectReason.INVALID, f"{_name(ref)} is recalled: never dispense it; decommission it or ship it back"
            )
        expiry = _lot_of(state, found).expiry
        if expiry_end_ms(expiry) <= context.time_ms:
            raise TxRejected(RejectReason.INVALID, f"{_name(ref)} expired on {expiry}: decommission it")
        event = _record(state, context, dispenser, ref, "dispense", None, "")
        _move(state, found, event, status="dispensed")


def apply_decommission(state: StateOverlay, context: TxContext, decommission: SupplyDecommission) -> None:
    holder = _require_organisation(state, context, "decommissions packs")
    if decommission.reason not in DECOMMISSION_REASONS:
        raise TxRejected(
            RejectReason.INVALID,
            f"unknown reason {decommission.reason[:40]!r}; known: {', '.join(sorted(DECOMMISSION_REASONS))}",
        )
    _check_refs(decommission.packs, "packs")
    for ref in decommission.packs:
        found = _held_pack(state, holder, ref, "decommission", repeat="decommissioned")
        event = _record(state, context, holder, ref, "decommission", None, decommission.reason)
        _move(state, found, event, status="decommissioned")
        if decommission.reason in ALERTING_DECOMMISSIONS:
            _add_alert(
                state, context, holder, f"decommissioned-{decommission.reason}", ref, "out of the legitimate chain"
            )


def refused_dispense(state: StateOverlay, context: TxContext, dispense: SupplyDispense, error: TxRejected) -> None:
    """A dispense refused because a pack of it was already dispensed, decommissioned or lost
    raises an alert for that pack: a second pack with its serial is at a counter, a clone."""
    dispenser = organisation_of(state, context.sender)
    if dispenser is None:
        return
    for ref in dispense.packs:  # one alert per refused dispense at most: a transaction buys no more
        if gtin_problem(ref.gtin) or code_problem(ref.serial, "serial"):
            return
        found = state.get(Pack, _pack_key(ref))
        if found is not None and found.status in CLONE_STATUSES:
            _add_alert(state, context, dispenser.id, "dispense-refused", ref, error.detail[:REASON_LENGTH_MAX])
            return


def _recall_lot(state: StateOverlay, gtin: str, lot_code: str, recall: Recall) -> None:
    _require(code_problem(lot_code, "lot"))
    lot = state.get(Lot, _lot_key(gtin, lot_code))
    if lot is None:
        raise TxRejected(RejectReason.INVALID, f"no pack of lot {lot_code!r} of GTIN {gtin} was commissioned")
    if lot.recall is not None:
        raise TxRejected(
            RejectReason.DUPLICATE,
            f"lot {lot_code!r} of GTIN {gtin} was already recalled at height {lot.recall.height}",
        )
    state.put(_lot_key(gtin, lot_code), replace(lot, recall=recall))


def _recall_serials(state: StateOverlay, gtin: str, serials: tuple[str, ...], recall: Recall) -> None:
    _check_serials(serials)
    for serial in serials:
        ref = PackRef(gtin, serial)
        found = state.get(Pack, _pack_key(ref))
        if found is None:
            raise TxRejected(RejectReason.INVALID, f"{_name(ref)} was never commissioned")
        assert found.manufacturer == recall.organisation, "only a GTIN's owner commissions it"
        if _recall_of(state, found) is not None:
            raise TxRejected(RejectReason.DUPLICATE, f"{_name(ref)} is already recalled")
        state.put(_pack_key(ref), replace(found, recall=recall))


def apply_recall(state: StateOverlay, context: TxContext, recall: SupplyRecall) -> None:
    manufacturer = _require_organisation(state, context, "recalls packs")
    _require(gtin_problem(recall.gtin))
    _check_reason(recall.reason)
    owner = state.get(bytes, _owner_key(recall.gtin))
    if owner is None:
        raise TxRejected(RejectReason.INVALID, f"no pack of GTIN {recall.gtin} was ever commissioned")
    if owner != manufacturer:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED, f"only GTIN {recall.gtin}'s manufacturer {_short(owner)} recalls its packs"
        )
    if (recall.lot is None) == (not recall.serials):
        raise TxRejected(
            RejectReason.INVALID,
            "recall either a lot (serials empty) or listed serials (lot null), not both or neither",
        )
    entry = Recall(manufacturer, context.height, context.time_ms, context.tx_id, recall.reason)
    if recall.lot is not None:
        _recall_lot(state, recall.gtin, recall.lot, entry)
    else:
        _recall_serials(state, recall.gtin, recall.serials, entry)


# -- verify (scan) ----------------------------------------------------------------------------------


def apply_verify(state: StateOverlay, context: TxContext, scan: SupplyVerify) -> None:
    scanner = _require_organisation(state, context, "records scans")
    _require(gtin_problem(scan.gtin))
    _require(code_problem(scan.serial, "serial"))
    _require(code_problem(scan.lot, "lot"))
    _require(expiry_problem(scan.expiry))
    verdict = verify(state, scan.gtin, scan.serial, context.time_ms, scanner, scan.lot, scan.expiry)
    ref = PackRef(scan.gtin, scan.serial)
    _record_scan(state, context, scanner, ref, verdict.status)
    if verdict.status in ALERT_STATUSES:
        _add_alert(state, context, scanner, verdict.status, ref, verdict.message)


# -- queries --------------------------------------------------------------------------------------------


def _require_query(problem: str | None) -> None:
    if problem is not None:
        raise ValueError(problem)


def _check_query(gtin: str, serial: str) -> PackRef:
    _require_query(gtin_problem(gtin) or code_problem(serial, "serial"))
    return PackRef(gtin, serial)


def pack(state: StateReader, gtin: str, serial: str) -> Pack | None:
    """The pack's current state, if it was commissioned; ValueError if malformed."""
    return StateOverlay(state).get(Pack, _pack_key(_check_query(gtin, serial)))


def shipment(state: StateReader, shipment_id: bytes) -> Shipment | None:
    return StateOverlay(state).get(Shipment, _shipment_key(shipment_id))


def shipment_of(state: StateReader, ref: PackRef) -> bytes | None:
    """The id of the shipment ``ref`` is in transit in, if any."""
    found = pack(state, ref.gtin, ref.serial)
    return None if found is None else found.shipment


def _recall_event(found: Pack, lot: Lot) -> PackEvent | None:
    if found.recall is not None:
        recall, what = found.recall, "serial"
    elif lot.recall is not None:
        recall, what = lot.recall, f"lot {found.lot}"
    else:
        return None
    return PackEvent(
        "recall", recall.organisation, recall.height, recall.time_ms, recall.tx_id, None, f"{what}: {recall.reason}"
    )


def trace(state: StateReader, gtin: str, serial: str) -> list[PackEvent]:
    """The pack's history in order, commissioning to dispensing, with its scans
    (an unknown serial's history is its scans); ValueError if malformed."""
    ref = _check_query(gtin, serial)
    view = StateOverlay(state)
    history = view.get(_History, _history_key(ref)) or _History(0, 0)
    events = [view.get(PackEvent, _event_key(ref, index)) for index in range(history.length)]
    listed = [event for event in events if event is not None]
    assert len(listed) == history.length, "a history's entries are written with its length"
    found = view.get(Pack, _pack_key(ref))
    recall = None if found is None else _recall_event(found, _lot_of(view, found))
    if recall is not None:
        at = sum(1 for event in listed if event.height <= recall.height)
        listed.insert(at, recall)
    return listed


def _judge(state: StateReader, found: Pack, lot: Lot, now_ms: int, organisation: bytes | None) -> tuple[str, str]:
    """The status and the sentence for a commissioned pack, worst news first."""
    last = StateOverlay(state).get(PackEvent, _event_key(PackRef(found.gtin, found.serial), found.status_event))
    assert last is not None
    by, at = _short(last.organisation), f"at height {last.height}"
    recall = _recall_of(state, found)
    if recall is not None:
        return (
            RECALLED,
            f"Recalled by its manufacturer ({recall.reason}): do not dispense; quarantine it and ship it back or "
            "decommission it.",
        )
    if found.status == "dispensed":
        return (
            DISPENSED,
            f"Already dispensed by {by} {at}: another pack with this serial is a suspect counterfeit. Do not dispense.",
        )
    if found.status == "decommissioned":
        return (
            DECOMMISSIONED,
            f"Decommissioned by {by} {at} ({last.detail}): it should not be in circulation. Do not dispense.",
        )
    if found.status == "missing":
        return (
            MISSING,
            f"Reported missing from {last.detail} by {by} {at}: possibly diverted. Do not dispense; report it.",
        )
    if expiry_end_ms(lot.expiry) <= now_ms:
        return EXPIRED, f"Expired on {lot.expiry}: do not dispense; decommission it."
    if found.status == "in-transit":
        assert last.party is not None, "a ship event names its destination"
        return (
            IN_TRANSIT,
            f"In transit to {_short(last.party)} in {last.detail}: the destination receives it before it is dispensed.",
        )
    if organisation is not None and organisation != found.holder:
        return (
            NOT_HELD_HERE,
            f"Genuine, but the ledger says {_short(found.holder)} holds it, not you: custody is broken. Do not "
            "dispense.",
        )
    return (
        GENUINE,
        f"Genuine: lot {found.lot}, expires {lot.expiry}, held by {_short(found.holder)}; it may be dispensed.",
    )


def verify(
    state: StateReader,
    gtin: str,
    serial: str,
    now_ms: int,
    organisation: bytes | None = None,
    lot: str | None = None,
    expiry: str | None = None,
) -> Verdict:
    """Is this pack genuine and dispensable at ``now_ms``, by ``organisation`` if
    given (else by its holder)? With ``lot`` and ``expiry`` (as printed on the pack),
    all four elements must match what was commissioned. ValueError if a code is malformed."""
    ref = _check_query(gtin, serial)
    _require_query((code_problem(lot, "lot") if lot else None) or (expiry_problem(expiry) if expiry else None))
    found = StateOverlay(state).get(Pack, _pack_key(ref))
    if found is None:
        message = (
            f"Suspect counterfeit: no pack with GTIN {gtin} and serial {serial} was ever commissioned. "
            "Do not dispense; quarantine it and report it."
        )
        return Verdict(UNKNOWN, message, gtin, serial, None, None)
    commissioned = _lot_of(state, found)
    printed = [("lot", lot, found.lot), ("expiry", expiry, commissioned.expiry)]
    wrong = [f"{name} {given} (commissioned: {actual})" for name, given, actual in printed if given and given != actual]
    if wrong:
        message = (
            f"Suspect product: serial {serial} of GTIN {gtin} is real, but this pack's {', '.join(wrong)} does not"
            " match: a copied serial. Do not dispense; quarantine it and report it."
        )
        return Verdict(MISMATCH, message, gtin, serial, found, commissioned.expiry)
    status, message = _judge(state, found, commissioned, now_ms, organisation)
    return Verdict(status, message, gtin, serial, found, commissioned.expiry)


LOT_PACKS_MAX = 10_000


def lot_record(state: StateReader, gtin: str, lot_code: str) -> Lot | None:
    """A lot's expiry and recall, if any pack of it was commissioned; ValueError if malformed."""
    _require_query(gtin_problem(gtin) or code_problem(lot_code, "lot"))
    return StateOverlay(state).get(Lot, _lot_key(gtin, lot_code))


def lot_packs(state: ScanState, gtin: str, lot: str, limit: int = LOT_PACKS_MAX) -> tuple[list[Pack], bool]:
    """The packs of a lot, where they are now (a recall's reach), in serial order: at most
    ``min(limit, LOT_PACKS_MAX)``, and whether more were left out. ValueError if malformed."""
    _require_query(gtin_problem(gtin) or code_problem(lot, "lot"))
    view = StateOverlay(state)
    packs: list[Pack] = []
    for key, _value in state.state_items(_lot_members_prefix(gtin, lot)):
        if len(packs) == min(limit, LOT_PACKS_MAX):
            return packs, True
        found = view.get(Pack, f"supply/pack/{gtin}/{key.rsplit('/', 1)[1]}")
        assert found is not None, "a lot lists only commissioned packs"
        packs.append(found)
    return packs, False


def alert_count(state: StateReader) -> int:
    return StateOverlay(state).get(int, _ALERT_COUNT_KEY) or 0


def alerts(state: StateReader, start: int = 0, limit: int = ALERTS_PAGE_MAX) -> list[Alert]:
    """Alerts ``start``, ``start + 1``... in the order they were raised, at most
    ``min(limit, ALERTS_PAGE_MAX)`` of them."""
    view = StateOverlay(state)
    end = min(alert_count(state), max(start, 0) + min(max(limit, 0), ALERTS_PAGE_MAX))
    found = [view.get(Alert, _alert_key(index)) for index in range(max(start, 0), end)]
    return [alert for alert in found if alert is not None]


TX_TYPES = (
    TxType("supply.commission", SupplyCommission, apply_commission),
    TxType("supply.ship", SupplyShip, apply_ship),
    TxType("supply.receive", SupplyReceive, apply_receive),
    TxType("supply.dispense", SupplyDispense, apply_dispense, refused_dispense),
    TxType("supply.decommission", SupplyDecommission, apply_decommission),
    TxType("supply.recall", SupplyRecall, apply_recall),
    TxType("supply.verify", SupplyVerify, apply_verify),
)
