"""Where the supply rules keep things in the state, how they append to a pack's history
and to the alert log, and the checks every rule that moves a pack shares."""

from __future__ import annotations

from dataclasses import replace
from typing import TypedDict, Unpack

from p2pmed.ledger.contracts.identity import organisation_of
from p2pmed.ledger.contracts.supply import limits
from p2pmed.ledger.contracts.supply._codes import pack_name, short
from p2pmed.ledger.contracts.supply._model import (
    Alert,
    Container,
    ContainerEvent,
    History,
    Lot,
    Pack,
    PackEvent,
    PackRef,
    Recall,
)
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext
from p2pmed.ledger.state import StateOverlay, StateReader

__all__ = [
    "ALERT_COUNT_KEY",
    "add_alert",
    "alert_key",
    "container_event_key",
    "container_key",
    "container_name",
    "escape",
    "event_key",
    "held_container",
    "held_pack",
    "history_key",
    "lot_key",
    "lot_members_prefix",
    "lot_of",
    "member_key",
    "move",
    "owner_key",
    "pack_key",
    "recall_of",
    "record",
    "record_container",
    "record_scan",
    "require_organisation",
    "shipment_key",
]


# -- state keys ----------------------------------------------------------------------


def escape(code: str) -> str:
    # Codes may hold "/", the key separator: escape it so no two keys collide.
    return code.replace("%", "%25").replace("/", "%2F")


def pack_path(ref: PackRef) -> str:
    return f"{ref.gtin}/{escape(ref.serial)}"


def pack_key(ref: PackRef) -> str:
    return f"supply/pack/{pack_path(ref)}"


def member_key(ref: PackRef) -> str:
    """The SSCC of the container the pack is packed in, if any."""
    return f"supply/in/{pack_path(ref)}"


def container_key(sscc: str) -> str:
    return f"supply/container/{sscc}"


def container_event_key(sscc: str, index: int) -> str:
    return f"supply/container-event/{sscc}/{index:03d}"


def history_key(ref: PackRef) -> str:
    return f"supply/history/{pack_path(ref)}"


def event_key(ref: PackRef, index: int) -> str:
    return f"supply/event/{pack_path(ref)}/{index:04d}"


def lot_key(gtin: str, lot: str) -> str:
    return f"supply/lot/{gtin}/{escape(lot)}"


def lot_members_prefix(gtin: str, lot: str) -> str:
    return f"supply/lot-pack/{gtin}/{escape(lot)}/"


def owner_key(gtin: str) -> str:
    return f"supply/gtin/{gtin}"


def shipment_key(shipment_id: bytes) -> str:
    return f"supply/shipment/{shipment_id.hex()}"


ALERT_COUNT_KEY = "supply/alerts"


def alert_key(index: int) -> str:
    return f"supply/alert/{index:012d}"


# -- recording ------------------------------------------------------------------------


def record(
    state: StateOverlay,
    context: TxContext,
    actor: bytes,
    ref: PackRef,
    kind: str,
    party: bytes | None,
    detail: str,
) -> int:
    """Append an event by the organisation ``actor`` (its id) to the pack's history; returns its index."""
    history = state.get(History, history_key(ref)) or History(0, 0)
    assert history.length < limits.HISTORY_LENGTH_MAX, "the shipment and scan limits bound every history"
    event = PackEvent(kind, actor, context.height, context.time_ms, context.tx_id, party, detail)
    state.put(event_key(ref, history.length), event)
    state.put(history_key(ref), History(history.length + 1, history.scans))
    return history.length


def record_scan(state: StateOverlay, context: TxContext, actor: bytes, ref: PackRef, status: str) -> None:
    history = state.get(History, history_key(ref)) or History(0, 0)
    if history.scans < limits.SCANS_LISTED_MAX:
        record(state, context, actor, ref, "scan", None, status)
        history = replace(history, length=history.length + 1)
    state.put(history_key(ref), replace(history, scans=history.scans + 1))


def record_container(
    state: StateOverlay,
    context: TxContext,
    actor: bytes,
    found: Container,
    kind: str,
    party: bytes | None = None,
    packs: tuple[PackRef, ...] = (),
    containers: tuple[str, ...] = (),
) -> Container:
    """Append an event to the container's history; returns the container counting it (not yet written)."""
    if found.events >= limits.CONTAINER_EVENTS_MAX:
        raise TxRejected(
            RejectReason.INVALID,
            f"{container_name(found.sscc)} has {limits.CONTAINER_EVENTS_MAX} events, the most its history holds:"
            " pack its contents into a new SSCC",
        )
    event = ContainerEvent(kind, actor, context.height, context.time_ms, context.tx_id, party, packs, containers)
    state.put(container_event_key(found.sscc, found.events), event)
    return replace(found, events=found.events + 1)


def add_alert(state: StateOverlay, context: TxContext, actor: bytes, kind: str, ref: PackRef, detail: str) -> None:
    index = state.get(int, ALERT_COUNT_KEY) or 0
    alert = Alert(index, kind, ref.gtin, ref.serial, actor, context.height, context.time_ms, context.tx_id, detail)
    state.put(alert_key(index), alert)
    state.put(ALERT_COUNT_KEY, index + 1)


# -- checks shared by the rules -------------------------------------------------------------


def require_organisation(
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


def held_pack(state: StateOverlay, holder: bytes, ref: PackRef, action: str, repeat: str = "") -> Pack:
    """The pack, if ``holder`` (the sender's organisation id) holds it and it is in circulation; ``repeat`` is the
    status this action gives, refused as a duplicate rather than as invalid."""
    found = state.get(Pack, pack_key(ref))
    if found is None:
        raise TxRejected(
            RejectReason.INVALID,
            f"{pack_name(ref)} was never commissioned: a suspect counterfeit; record it with supply.verify",
        )
    if found.status in _ENDED:
        reason = RejectReason.DUPLICATE if found.status == repeat else RejectReason.INVALID
        raise TxRejected(reason, f"{pack_name(ref)} {_ENDED[found.status]}: nobody can {action} it now")
    if found.status == "in-transit":
        assert found.shipment is not None
        raise TxRejected(
            RejectReason.INVALID,
            f"{pack_name(ref)} is in transit in shipment {found.shipment.hex()}: its destination must receive it first",
        )
    if found.holder != holder:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"{pack_name(ref)} is held by {short(found.holder)}, not by the sender: only its holder can {action} it",
        )
    inside = state.get(str, member_key(ref))
    if inside is not None:
        raise TxRejected(
            RejectReason.INVALID,
            f"{pack_name(ref)} is packed in {container_name(inside)}: disaggregate it before you {action} it alone",
        )
    return found


def container_name(sscc: str) -> str:
    return f"container (00){sscc}"


_CONTAINER_ENDED = {"missing": "was reported missing in transit", "emptied": "was emptied, and an SSCC is not reused"}


def held_container(state: StateOverlay, holder: bytes, sscc: str, action: str, nested_ok: bool = False) -> Container:
    """The container, if ``holder`` holds it, it is not in transit nor ended, and (unless ``nested_ok``) it is
    not packed in another one."""
    found = state.get(Container, container_key(sscc))
    if found is None:
        raise TxRejected(RejectReason.INVALID, f"no {container_name(sscc)} was ever packed")
    if found.status in _CONTAINER_ENDED:
        raise TxRejected(
            RejectReason.INVALID, f"{container_name(sscc)} {_CONTAINER_ENDED[found.status]}: nobody can {action} it"
        )
    if found.status == "in-transit":
        assert found.shipment is not None
        raise TxRejected(
            RejectReason.INVALID,
            f"{container_name(sscc)} is in transit in shipment {found.shipment.hex()}: its destination must receive"
            " it first",
        )
    if found.holder != holder:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"{container_name(sscc)} is held by {short(found.holder)}, not by the sender: only its holder can"
            f" {action} it",
        )
    if found.parent is not None and not nested_ok:
        raise TxRejected(
            RejectReason.INVALID,
            f"{container_name(sscc)} is packed in {container_name(found.parent)}: take it out before you {action} it",
        )
    return found


def lot_of(state: StateReader, found: Pack) -> Lot:
    lot = StateOverlay(state).get(Lot, lot_key(found.gtin, found.lot))
    assert lot is not None, "a pack's lot is written when the pack is commissioned"
    return lot


def recall_of(state: StateReader, found: Pack) -> Recall | None:
    return found.recall or lot_of(state, found).recall


class _PackChanges(TypedDict, total=False):
    holder: bytes
    status: str
    shipment: bytes | None
    shipments: int


def move(state: StateOverlay, found: Pack, event: int, **changes: Unpack[_PackChanges]) -> None:
    state.put(pack_key(PackRef(found.gtin, found.serial)), replace(found, status_event=event, **changes))
