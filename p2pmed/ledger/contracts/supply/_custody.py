"""The custody rules: commission, ship, receive, dispense, decommission and recall."""

from __future__ import annotations

from dataclasses import replace

from p2pmed.ledger.contracts.identity import organisation_in_force, organisation_of
from p2pmed.ledger.contracts.supply import limits
from p2pmed.ledger.contracts.supply._codes import (
    check_reason,
    check_refs,
    check_serials,
    check_ssccs,
    code_problem,
    expiry_end_ms,
    expiry_problem,
    gtin_problem,
    pack_name,
    require,
    short,
)
from p2pmed.ledger.contracts.supply._containers import contents, take_containers
from p2pmed.ledger.contracts.supply._model import (
    ALERTING_DECOMMISSIONS,
    CLONE_STATUSES,
    DECOMMISSION_REASONS,
    DISPENSER_KINDS,
    MISSING,
    Container,
    Lot,
    Pack,
    PackRef,
    Recall,
    Receipt,
    Shipment,
    SupplyCommission,
    SupplyDecommission,
    SupplyDispense,
    SupplyRecall,
    SupplyReceive,
    SupplyShip,
)
from p2pmed.ledger.contracts.supply._prefixes import require_prefix
from p2pmed.ledger.contracts.supply._returns import note_holder, note_receipt, refuse_unverified_return
from p2pmed.ledger.contracts.supply._store import (
    add_alert,
    container_key,
    container_name,
    escape,
    held_pack,
    lot_key,
    lot_members_prefix,
    lot_of,
    move,
    owner_key,
    pack_key,
    recall_of,
    record,
    record_container,
    require_organisation,
    shipment_key,
)
from p2pmed.ledger.contracts.supply._suspects import refuse_quarantined
from p2pmed.ledger.contracts.supply._tally import Field, TallyBatch, count_leave, count_missing, count_receive
from p2pmed.ledger.errors import RejectReason, TxRejected
from p2pmed.ledger.rules import TxContext
from p2pmed.ledger.state import StateOverlay

__all__ = [
    "apply_commission",
    "apply_decommission",
    "apply_dispense",
    "apply_recall",
    "apply_receive",
    "apply_ship",
    "refused_dispense",
]


# -- commission ------------------------------------------------------------------------


def _claim_gtin(state: StateOverlay, manufacturer: bytes, gtin: str) -> None:
    owner = state.get(bytes, owner_key(gtin))
    if owner is None:
        state.put(owner_key(gtin), manufacturer)
    elif owner != manufacturer:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"GTIN {gtin} belongs to manufacturer {short(owner)}, which alone commissions it",
        )


def _open_lot(state: StateOverlay, commission: SupplyCommission) -> None:
    lot = state.get(Lot, lot_key(commission.gtin, commission.lot))
    if lot is None:
        state.put(lot_key(commission.gtin, commission.lot), Lot(commission.expiry, None))
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
    manufacturer = require_organisation(state, context, "commissions packs", frozenset({"manufacturer"}))
    require(gtin_problem(commission.gtin))
    require(code_problem(commission.lot, "lot"))
    require(expiry_problem(commission.expiry))
    if expiry_end_ms(commission.expiry) <= context.time_ms:
        raise TxRejected(RejectReason.INVALID, f"expiry {commission.expiry} has passed at this block's time")
    check_serials(commission.serials)
    require_prefix(state, manufacturer, commission.gtin)
    _claim_gtin(state, manufacturer, commission.gtin)
    _open_lot(state, commission)
    detail = f"lot {commission.lot}, expiry {commission.expiry}"
    for serial in commission.serials:
        ref = PackRef(commission.gtin, serial)
        if state.state_get(pack_key(ref)) is not None:
            raise TxRejected(
                RejectReason.DUPLICATE, f"{pack_name(ref)} is already commissioned; serials are never reused"
            )
        event = record(state, context, manufacturer, ref, "commission", None, detail)
        state.put(
            pack_key(ref),
            Pack(ref.gtin, serial, commission.lot, manufacturer, manufacturer, "held", None, None, 0, event),
        )
        state.put(lot_members_prefix(ref.gtin, commission.lot) + escape(serial), True)
        note_holder(state, ref, manufacturer)


# -- ship and receive ----------------------------------------------------------------------


def _ship_pack(
    state: StateOverlay,
    batch: TallyBatch,
    context: TxContext,
    source: bytes,
    destination: bytes,
    found: Pack,
    detail: str,
) -> None:
    ref = PackRef(found.gtin, found.serial)
    refuse_quarantined(state, ref, "ship")
    refuse_unverified_return(state, ref, "ship")
    if recall_of(state, found) is not None and destination != found.manufacturer:
        raise TxRejected(
            RejectReason.INVALID, f"{pack_name(ref)} is recalled: it may only be shipped back to its manufacturer"
        )
    if found.shipments >= limits.SHIPMENTS_PER_PACK_MAX:
        raise TxRejected(
            RejectReason.INVALID,
            f"{pack_name(ref)} has been shipped {limits.SHIPMENTS_PER_PACK_MAX} times, the most a pack's history holds",
        )
    count_leave(state, batch, context, source, found, "shipped")
    event = record(state, context, source, ref, "ship", destination, detail)
    move(state, found, event, status="in-transit", shipment=context.tx_id, shipments=found.shipments + 1)


def _packed(state: StateOverlay, ref: PackRef, holder: bytes, status: str) -> Pack:
    found = state.get(Pack, pack_key(ref))
    assert found is not None and found.holder == holder and found.status == status, (
        "a container's packs share its holder and status"
    )
    return found


def apply_ship(state: StateOverlay, context: TxContext, ship: SupplyShip) -> None:
    source = require_organisation(state, context, "ships packs")
    if ship.destination == source:
        raise TxRejected(RejectReason.INVALID, "a shipment goes to another organisation, not to its sender")
    if organisation_in_force(state, ship.destination) is None:
        raise TxRejected(RejectReason.INVALID, "the destination is not an organisation in force: name it by its id")
    check_refs(ship.packs, "packs", empty_ok=bool(ship.containers))
    taken = take_containers(state, source, ship.containers, len(ship.packs), "ship")
    detail = f"shipment {context.tx_id.hex()}"
    batch = TallyBatch(state)
    for ref in ship.packs:
        _ship_pack(state, batch, context, source, ship.destination, held_pack(state, source, ref, "ship"), detail)
    for top in taken:
        packs, containers = contents(state, top)
        for ref in packs:
            found = _packed(state, ref, source, "held")
            _ship_pack(
                state, batch, context, source, ship.destination, found, f"{detail} in {container_name(top.sscc)}"
            )
        for inner in containers:
            inner = record_container(state, context, source, inner, "ship", ship.destination)
            state.put(container_key(inner.sscc), replace(inner, status="in-transit", shipment=context.tx_id))
    batch.flush(state)
    sent = Shipment(
        context.tx_id, source, ship.destination, ship.packs, context.height, context.time_ms, None, ship.containers
    )
    state.put(shipment_key(context.tx_id), sent)


def _check_listed(
    arrived: tuple[object, ...], missing: tuple[object, ...], expected: tuple[object, ...], name: str, shipment: str
) -> None:
    """``arrived`` and ``missing`` together are ``expected``, each item once."""
    listed = set(arrived)
    for item in missing:
        if item in listed:
            raise TxRejected(RejectReason.INVALID, f"{name}{item} is listed both as arrived and as missing")
    listed.update(missing)
    wanted = set(expected)
    for item in (*arrived, *missing):
        if item not in wanted:
            raise TxRejected(RejectReason.INVALID, f"mismatch: {name}{item} is not in shipment {shipment}")
    for item in expected:
        if item not in listed:
            raise TxRejected(
                RejectReason.INVALID,
                f"mismatch: {name}{item} of the shipment is not listed; list it as missing if it did not arrive",
            )


def _check_receipt_matches(receive: SupplyReceive, sent: Shipment) -> None:
    check_refs(receive.packs, "packs", empty_ok=True)
    check_refs(receive.missing, "missing packs", empty_ok=True)
    check_ssccs(receive.containers, "containers")
    check_ssccs(receive.missing_containers, "missing containers")
    names = {ref: pack_name(ref) for ref in (*receive.packs, *receive.missing, *sent.packs)}
    _check_listed(
        tuple(names[ref] for ref in receive.packs),
        tuple(names[ref] for ref in receive.missing),
        tuple(names[ref] for ref in sent.packs),
        "",
        sent.id.hex(),
    )
    _check_listed(receive.containers, receive.missing_containers, sent.containers, "container (00)", sent.id.hex())


def _in_transit(state: StateOverlay, ref: PackRef, sent: Shipment) -> Pack:
    found = state.get(Pack, pack_key(ref))
    assert found is not None and found.status == "in-transit" and found.shipment == sent.id, (
        "nothing moves a pack in transit"
    )
    return found


def _sent_to(state: StateOverlay, receiver: bytes, shipment_id: bytes) -> Shipment:
    if len(shipment_id) != limits.SHIPMENT_ID_SIZE:
        raise TxRejected(
            RejectReason.INVALID,
            f"a shipment id is the {limits.SHIPMENT_ID_SIZE}-byte id of its supply.ship transaction",
        )
    sent = state.get(Shipment, shipment_key(shipment_id))
    if sent is None:
        raise TxRejected(RejectReason.INVALID, f"no shipment has id {shipment_id.hex()}")
    if sent.destination != receiver:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED,
            f"shipment {sent.id.hex()} goes to {short(sent.destination)}, not to the sender",
        )
    if sent.receipt is not None:
        raise TxRejected(
            RejectReason.DUPLICATE, f"shipment {sent.id.hex()} was already received at height {sent.receipt.height}"
        )
    return sent


def _receive_pack(
    state: StateOverlay,
    batch: TallyBatch,
    context: TxContext,
    receiver: bytes,
    sent: Shipment,
    ref: PackRef,
    arrived: bool,
    detail: str,
) -> None:
    found = _in_transit(state, ref, sent)
    if arrived:
        event = record(state, context, receiver, ref, "receive", sent.source, detail)
        move(state, found, event, holder=receiver, status="held", shipment=None)
        count_receive(batch, context, receiver, ref)
        note_receipt(state, context, receiver, ref)
        return
    count_missing(batch, context, sent.source, ref)
    event = record(state, context, receiver, ref, "missing", sent.source, detail)
    move(state, found, event, status="missing", shipment=None)
    add_alert(
        state, context, receiver, MISSING, ref, f"{pack_name(ref)} did not arrive in {detail} from {short(sent.source)}"
    )


def _receive_container(
    state: StateOverlay,
    batch: TallyBatch,
    context: TxContext,
    receiver: bytes,
    sent: Shipment,
    sscc: str,
    arrived: bool,
) -> None:
    top = state.get(Container, container_key(sscc))
    assert top is not None and top.status == "in-transit" and top.shipment == sent.id, "nothing moves a container"
    packs, containers = contents(state, top)
    detail = f"shipment {sent.id.hex()} in {container_name(sscc)}"
    for ref in packs:
        _receive_pack(state, batch, context, receiver, sent, ref, arrived, detail)
    kind, status = ("receive", "held") if arrived else ("missing", "missing")
    for found in containers:
        found = record_container(state, context, receiver, found, kind, sent.source)
        holder = receiver if arrived else found.holder
        state.put(container_key(found.sscc), replace(found, holder=holder, status=status, shipment=None))


def apply_receive(state: StateOverlay, context: TxContext, receive: SupplyReceive) -> None:
    receiver = require_organisation(state, context, "receives shipments")
    sent = _sent_to(state, receiver, receive.shipment)
    _check_receipt_matches(receive, sent)
    detail = f"shipment {sent.id.hex()}"
    batch = TallyBatch(state)
    for refs, arrived in ((receive.packs, True), (receive.missing, False)):
        for ref in refs:
            _receive_pack(state, batch, context, receiver, sent, ref, arrived, detail)
    for ssccs, arrived in ((receive.containers, True), (receive.missing_containers, False)):
        for sscc in ssccs:
            _receive_container(state, batch, context, receiver, sent, sscc, arrived)
    batch.flush(state)
    receipt = Receipt(context.height, context.time_ms, context.tx_id, receive.missing, receive.missing_containers)
    state.put(shipment_key(sent.id), replace(sent, receipt=receipt))


# -- dispense, decommission, recall ---------------------------------------------------------------


def apply_dispense(state: StateOverlay, context: TxContext, dispense: SupplyDispense) -> None:
    dispenser = require_organisation(state, context, "dispenses packs", DISPENSER_KINDS)
    check_refs(dispense.packs, "packs")
    batch = TallyBatch(state)
    for ref in dispense.packs:
        found = held_pack(state, dispenser, ref, "dispense", repeat="dispensed")
        refuse_quarantined(state, ref, "dispense")
        refuse_unverified_return(state, ref, "dispense")
        if recall_of(state, found) is not None:
            raise TxRejected(
                RejectReason.INVALID,
                f"{pack_name(ref)} is recalled: never dispense it; decommission it or ship it back",
            )
        expiry = lot_of(state, found).expiry
        if expiry_end_ms(expiry) <= context.time_ms:
            raise TxRejected(RejectReason.INVALID, f"{pack_name(ref)} expired on {expiry}: decommission it")
        count_leave(state, batch, context, dispenser, found, "dispensed")
        event = record(state, context, dispenser, ref, "dispense", None, "")
        move(state, found, event, status="dispensed")
    batch.flush(state)


def apply_decommission(state: StateOverlay, context: TxContext, decommission: SupplyDecommission) -> None:
    holder = require_organisation(state, context, "decommissions packs")
    if decommission.reason not in DECOMMISSION_REASONS:
        raise TxRejected(
            RejectReason.INVALID,
            f"unknown reason {decommission.reason[:40]!r}; known: {', '.join(sorted(DECOMMISSION_REASONS))}",
        )
    check_refs(decommission.packs, "packs")
    alerting = decommission.reason in ALERTING_DECOMMISSIONS
    counted: tuple[Field, ...] = ("decommissioned", "stolen_lost") if alerting else ("decommissioned",)
    batch = TallyBatch(state)
    for ref in decommission.packs:
        found = held_pack(state, holder, ref, "decommission", repeat="decommissioned")
        count_leave(state, batch, context, holder, found, *counted)
        event = record(state, context, holder, ref, "decommission", None, decommission.reason)
        move(state, found, event, status="decommissioned")
        if alerting:
            add_alert(
                state, context, holder, f"decommissioned-{decommission.reason}", ref, "out of the legitimate chain"
            )
    batch.flush(state)


def refused_dispense(state: StateOverlay, context: TxContext, dispense: SupplyDispense, error: TxRejected) -> None:
    """A dispense refused because a pack of it was already dispensed, decommissioned or lost
    raises an alert for that pack: a second pack with its serial is at a counter, a clone."""
    dispenser = organisation_of(state, context.sender)
    if dispenser is None:
        return
    for ref in dispense.packs:  # one alert per refused dispense at most: a transaction buys no more
        if gtin_problem(ref.gtin) or code_problem(ref.serial, "serial"):
            return
        found = state.get(Pack, pack_key(ref))
        if found is not None and found.status in CLONE_STATUSES:
            add_alert(state, context, dispenser.id, "dispense-refused", ref, error.detail[: limits.REASON_LENGTH_MAX])
            return


def _recall_lot(state: StateOverlay, gtin: str, lot_code: str, recall: Recall) -> None:
    require(code_problem(lot_code, "lot"))
    lot = state.get(Lot, lot_key(gtin, lot_code))
    if lot is None:
        raise TxRejected(RejectReason.INVALID, f"no pack of lot {lot_code!r} of GTIN {gtin} was commissioned")
    if lot.recall is not None:
        raise TxRejected(
            RejectReason.DUPLICATE,
            f"lot {lot_code!r} of GTIN {gtin} was already recalled at height {lot.recall.height}",
        )
    state.put(lot_key(gtin, lot_code), replace(lot, recall=recall))


def _recall_serials(state: StateOverlay, gtin: str, serials: tuple[str, ...], recall: Recall) -> None:
    check_serials(serials)
    for serial in serials:
        ref = PackRef(gtin, serial)
        found = state.get(Pack, pack_key(ref))
        if found is None:
            raise TxRejected(RejectReason.INVALID, f"{pack_name(ref)} was never commissioned")
        assert found.manufacturer == recall.organisation, "only a GTIN's owner commissions it"
        if recall_of(state, found) is not None:
            raise TxRejected(RejectReason.DUPLICATE, f"{pack_name(ref)} is already recalled")
        state.put(pack_key(ref), replace(found, recall=recall))


def apply_recall(state: StateOverlay, context: TxContext, recall: SupplyRecall) -> None:
    manufacturer = require_organisation(state, context, "recalls packs")
    require(gtin_problem(recall.gtin))
    check_reason(recall.reason)
    owner = state.get(bytes, owner_key(recall.gtin))
    if owner is None:
        raise TxRejected(RejectReason.INVALID, f"no pack of GTIN {recall.gtin} was ever commissioned")
    if owner != manufacturer:
        raise TxRejected(
            RejectReason.NOT_AUTHORISED, f"only GTIN {recall.gtin}'s manufacturer {short(owner)} recalls its packs"
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
