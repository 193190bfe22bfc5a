"""What the supply rules read and write: transaction bodies, the ledger's records of
packs, lots, shipments and alerts, and the words for a pack's state."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ALERTING_DECOMMISSIONS",
    "ALERT_STATUSES",
    "CLONE_STATUSES",
    "DECOMMISSIONED",
    "DECOMMISSION_REASONS",
    "DISPENSED",
    "DISPENSER_KINDS",
    "EXPIRED",
    "GENUINE",
    "IN_TRANSIT",
    "MISMATCH",
    "MISSING",
    "NOT_HELD_HERE",
    "QUARANTINED",
    "RECALLED",
    "UNKNOWN",
    "VERDICT_STATUSES",
    "Alert",
    "Container",
    "ContainerEvent",
    "History",
    "Lot",
    "Pack",
    "PackEvent",
    "PackRef",
    "Recall",
    "Receipt",
    "Shipment",
    "SupplyAggregate",
    "SupplyCommission",
    "SupplyDecommission",
    "SupplyDisaggregate",
    "SupplyDispense",
    "SupplyRecall",
    "SupplyReceive",
    "SupplyShip",
    "SupplyVerify",
    "Verdict",
]

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
QUARANTINED = "quarantined-suspect"
VERDICT_STATUSES = (
    GENUINE,
    UNKNOWN,
    MISMATCH,
    RECALLED,
    QUARANTINED,
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
    """Loose ``packs`` and whole ``containers`` (SSCCs), with everything inside them."""

    destination: bytes
    packs: tuple[PackRef, ...]
    containers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SupplyReceive:
    """Every loose pack and every container of the shipment, as arrived or missing."""

    shipment: bytes
    packs: tuple[PackRef, ...]
    missing: tuple[PackRef, ...]
    containers: tuple[str, ...] = ()
    missing_containers: tuple[str, ...] = ()


@dataclass(frozen=True)
class SupplyAggregate:
    """Pack ``packs`` and ``containers`` into the container ``parent`` (an SSCC-18), opened
    for the sender if it is new: EPCIS's AggregationEvent with action ADD."""

    parent: str
    packs: tuple[PackRef, ...]
    containers: tuple[str, ...]


@dataclass(frozen=True)
class SupplyDisaggregate:
    """Take ``packs`` and ``containers`` out of ``parent``, or everything if both are empty:
    EPCIS's AggregationEvent with action DELETE."""

    parent: str
    packs: tuple[PackRef, ...]
    containers: tuple[str, ...]


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
    missing_containers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shipment:
    id: bytes
    source: bytes
    destination: bytes
    packs: tuple[PackRef, ...]
    """The loose packs; those in ``containers`` are found through them."""
    height: int
    time_ms: int
    receipt: Receipt | None
    containers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Container:
    """A logistic unit (a case, a pallet) named by its SSCC-18, and what is in it."""

    sscc: str
    holder: bytes
    status: str
    """held, in-transit, missing, or emptied: an SSCC is never reused."""
    parent: str | None
    """The container this one is packed in."""
    packs: tuple[PackRef, ...]
    containers: tuple[str, ...]
    items: int
    """Itself and everything in it, at every depth: what shipping it moves."""
    depth: int
    """Levels of containers, itself included: 1 holds only packs."""
    shipment: bytes | None
    events: int


@dataclass(frozen=True)
class ContainerEvent:
    """One entry of a container's history: ``aggregate`` and ``disaggregate`` list the
    children added or taken out; ``ship``, ``receive`` and ``missing`` name the other party."""

    kind: str
    organisation: bytes
    height: int
    time_ms: int
    tx_id: bytes
    party: bytes | None
    packs: tuple[PackRef, ...]
    containers: tuple[str, ...]


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
class History:
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
