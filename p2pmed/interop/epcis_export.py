"""EPCIS 2.0 JSON-LD export of packs' histories, which ``p2pmed.interop.epcis`` imports back.

Each entry of a pack's history becomes an ObjectEvent at ledger time; the entries of
several packs made by one transaction (a lot commissioned together, a shipment) become
one event listing all of them, in the order the ledger made them:

    history entry    event                                      imported back as
    commission       ADD commissioning, ilmd lot and expiry     supply.commission
    ship             OBSERVE shipping, source and destination   supply.ship
    receive          OBSERVE receiving at the receiver          supply.receive of the shipment above
    dispense         OBSERVE dispensing                         supply.dispense
    decommission     DELETE decommissioning, disposition        supply.decommission
    missing          OBSERVE receiving-missing (p2pmed step)    kept as a record
    scan             OBSERVE inspecting, the verdict            kept as a record
    recall           OBSERVE holding, disposition recalled      kept as a record

Organisations are named by ``urn:p2pmed:org:<id hex>`` (as a party in sourceList and
destinationList, as the receiver's bizLocation), which the import reads without a party
mapping. The organisation, transaction and height of each entry are ``p2pmed:`` extension
fields. Containers are not exported here (``export_aggregations`` exports one's packing),
so a re-import of a pack shipped inside a container ships it loose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from p2pmed.interop.epcis import EPCIS_CONTEXT, P2PMED_NAMESPACE, epc_time, organisation_uri, pack_uri
from p2pmed.ledger.contracts.supply import PackEvent, PackRef

__all__ = ["PackHistory", "export_histories"]

_DISPOSITIONS = {
    "damaged": "damaged",
    "destroyed": "destroyed",
    "expired": "expired",
    "stolen": "stolen",
    "lost": "unknown",
    "sample": "non_sellable_other",
    "other": "non_sellable_other",
}
_STEPS = {
    "commission": ("ADD", "commissioning", "active"),
    "ship": ("OBSERVE", "shipping", "in_transit"),
    "receive": ("OBSERVE", "receiving", "in_progress"),
    "dispense": ("OBSERVE", "dispensing", "dispensed"),
    "missing": ("OBSERVE", f"{P2PMED_NAMESPACE}bizstep:receiving-missing", "unknown"),
    "scan": ("OBSERVE", "inspecting", ""),
    "recall": ("OBSERVE", "holding", "recalled"),
}


@dataclass(frozen=True)
class PackHistory:
    """A pack, the lot and expiry it was commissioned with, and its history (``supply.trace``)."""

    pack: PackRef
    lot: str
    expiry: str
    events: Sequence[PackEvent]


def _event(entry: PackEvent, history: PackHistory, packs: list[PackRef]) -> dict[str, Any]:
    if entry.kind == "decommission":
        action, step, disposition = "DELETE", "decommissioning", _DISPOSITIONS.get(entry.detail, "non_sellable_other")
    else:
        action, step, disposition = _STEPS[entry.kind]
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": epc_time(entry.time_ms),
        "eventTimeZoneOffset": "+00:00",
        "epcList": [pack_uri(pack) for pack in packs],
        "action": action,
        "bizStep": step,
    }
    if disposition:
        event["disposition"] = disposition
    if entry.kind == "commission":
        event["ilmd"] = {"cbvmda:lotNumber": history.lot, "cbvmda:itemExpirationDate": history.expiry}
    elif entry.kind == "ship" and entry.party is not None:
        event["sourceList"] = [{"type": "owning_party", "source": organisation_uri(entry.organisation)}]
        event["destinationList"] = [{"type": "owning_party", "destination": organisation_uri(entry.party)}]
    elif entry.kind in ("receive", "missing"):
        event["bizLocation"] = {"id": organisation_uri(entry.organisation)}
    if entry.kind in ("scan", "recall", "missing"):
        event["p2pmed:detail"] = entry.detail
    event["p2pmed:organisation"] = entry.organisation.hex()
    event["p2pmed:transaction"] = entry.tx_id.hex()
    event["p2pmed:height"] = entry.height
    return event


def export_histories(histories: Sequence[PackHistory], created_ms: int) -> dict[str, Any]:
    """An EPCIS 2.0 JSON-LD document of the packs' histories: one event per transaction and kind,
    ordered by height, then by where the entry stands in its pack's history."""
    order: dict[tuple[bytes, str], tuple[int, int]] = {}
    packs: dict[tuple[bytes, str], list[PackRef]] = {}
    first: dict[tuple[bytes, str], tuple[PackEvent, PackHistory]] = {}
    for history in histories:
        for index, entry in enumerate(history.events):
            key = (entry.tx_id, entry.kind)
            order[key] = min(order.get(key, (entry.height, index)), (entry.height, index))
            packs.setdefault(key, []).append(history.pack)
            first.setdefault(key, (entry, history))
    events = [_event(*first[key], packs[key]) for key in sorted(order, key=order.__getitem__)]
    return {
        "@context": [EPCIS_CONTEXT, {"p2pmed": P2PMED_NAMESPACE}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": epc_time(created_ms),
        "epcisBody": {"eventList": events},
    }
