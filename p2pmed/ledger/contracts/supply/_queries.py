"""Reads for the RPC layer: a pack, a shipment, a pack's history, a lot's reach, the alerts."""

from __future__ import annotations

from p2pmed.ledger.contracts.supply import limits
from p2pmed.ledger.contracts.supply._codes import (
    check_query,
    code_problem,
    gtin_problem,
    require_query,
    sscc_problem,
)
from p2pmed.ledger.contracts.supply._model import (
    Alert,
    Container,
    ContainerEvent,
    History,
    Lot,
    Pack,
    PackEvent,
    PackRef,
    Shipment,
)
from p2pmed.ledger.contracts.supply._store import (
    ALERT_COUNT_KEY,
    alert_key,
    container_event_key,
    container_key,
    event_key,
    history_key,
    lot_key,
    lot_members_prefix,
    lot_of,
    member_key,
    pack_key,
    shipment_key,
)
from p2pmed.ledger.state import ScanState, StateOverlay, StateReader

__all__ = [
    "alert_count",
    "alerts",
    "container",
    "container_history",
    "container_of",
    "lot_packs",
    "lot_record",
    "pack",
    "packs_matching",
    "shipment",
    "shipment_of",
    "trace",
]


def pack(state: StateReader, gtin: str, serial: str) -> Pack | None:
    """The pack's current state, if it was commissioned; ValueError if malformed."""
    return StateOverlay(state).get(Pack, pack_key(check_query(gtin, serial)))


def shipment(state: StateReader, shipment_id: bytes) -> Shipment | None:
    return StateOverlay(state).get(Shipment, shipment_key(shipment_id))


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
    ref = check_query(gtin, serial)
    view = StateOverlay(state)
    history = view.get(History, history_key(ref)) or History(0, 0)
    events = [view.get(PackEvent, event_key(ref, index)) for index in range(history.length)]
    listed = [event for event in events if event is not None]
    assert len(listed) == history.length, "a history's entries are written with its length"
    found = view.get(Pack, pack_key(ref))
    recall = None if found is None else _recall_event(found, lot_of(view, found))
    if recall is not None:
        at = sum(1 for event in listed if event.height <= recall.height)
        listed.insert(at, recall)
    return listed


def lot_record(state: StateReader, gtin: str, lot_code: str) -> Lot | None:
    """A lot's expiry and recall, if any pack of it was commissioned; ValueError if malformed."""
    require_query(gtin_problem(gtin) or code_problem(lot_code, "lot"))
    return StateOverlay(state).get(Lot, lot_key(gtin, lot_code))


def lot_packs(state: ScanState, gtin: str, lot: str, limit: int = limits.LOT_PACKS_MAX) -> tuple[list[Pack], bool]:
    """The packs of a lot, where they are now (a recall's reach), in serial order: at most
    ``min(limit, limits.LOT_PACKS_MAX)``, and whether more were left out. ValueError if malformed."""
    require_query(gtin_problem(gtin) or code_problem(lot, "lot"))
    view = StateOverlay(state)
    packs: list[Pack] = []
    for key, _value in state.state_items(lot_members_prefix(gtin, lot)):
        if len(packs) == min(limit, limits.LOT_PACKS_MAX):
            return packs, True
        found = view.get(Pack, f"supply/pack/{gtin}/{key.rsplit('/', 1)[1]}")
        assert found is not None, "a lot lists only commissioned packs"
        packs.append(found)
    return packs, False


def packs_matching(
    state: ScanState, gtin: str | None, serial: str | None, lot: str | None, limit: int
) -> tuple[list[Pack], bool]:
    """The commissioned packs a query names, in key order: one pack (``gtin`` and ``serial``), a lot
    (``gtin`` and ``lot``), a GTIN's packs, or every pack; at most ``limit``, and whether more were left
    out. ValueError if malformed."""
    if serial is not None or lot is not None:
        require_query(None if gtin is not None else "name the GTIN of a serial or a lot")
    if gtin is not None and serial is not None:
        found = pack(state, gtin, serial)
        return ([] if found is None else [found]), False
    if gtin is not None and lot is not None:
        return lot_packs(state, gtin, lot, limit)
    if gtin is not None:
        require_query(gtin_problem(gtin))
    view = StateOverlay(state)
    packs: list[Pack] = []
    for key, _value in state.state_items(f"supply/pack/{gtin + '/' if gtin else ''}"):
        if len(packs) == limit:
            return packs, True
        found = view.get(Pack, key)
        assert found is not None
        packs.append(found)
    return packs, False


def alert_count(state: StateReader) -> int:
    return StateOverlay(state).get(int, ALERT_COUNT_KEY) or 0


def alerts(state: StateReader, start: int = 0, limit: int = limits.ALERTS_PAGE_MAX) -> list[Alert]:
    """Alerts ``start``, ``start + 1``... in the order they were raised, at most
    ``min(limit, limits.ALERTS_PAGE_MAX)`` of them."""
    view = StateOverlay(state)
    end = min(alert_count(state), max(start, 0) + min(max(limit, 0), limits.ALERTS_PAGE_MAX))
    found = [view.get(Alert, alert_key(index)) for index in range(max(start, 0), end)]
    return [alert for alert in found if alert is not None]


def container(state: StateReader, sscc: str) -> Container | None:
    """The container with this SSCC, if anything was ever packed in it; ValueError if malformed."""
    require_query(sscc_problem(sscc))
    return StateOverlay(state).get(Container, container_key(sscc))


def container_history(state: StateReader, sscc: str) -> list[ContainerEvent]:
    """What happened to the container, in order: packing, unpacking, shipments; ValueError if malformed."""
    found = container(state, sscc)
    view = StateOverlay(state)
    events = [
        view.get(ContainerEvent, container_event_key(sscc, index)) for index in range(found.events if found else 0)
    ]
    listed = [event for event in events if event is not None]
    assert len(listed) == len(events), "a container's events are written with its count"
    return listed


def container_of(state: StateReader, ref: PackRef) -> str | None:
    """The SSCC of the container the pack is packed in, if any."""
    return StateOverlay(state).get(str, member_key(check_query(ref.gtin, ref.serial)))
