"""The supply rules' limits: each bounds the work or the state one transaction or one pack
can cost. Rules read them as ``limits.NAME`` when they run, so a test may lower one."""

from __future__ import annotations

__all__ = [
    "ALERTS_PAGE_MAX",
    "CODE_LENGTH_MAX",
    "CONTAINER_DEPTH_MAX",
    "CONTAINER_EVENTS_MAX",
    "HISTORY_LENGTH_MAX",
    "ITEMS_MOVED_PER_TX_MAX",
    "ITEMS_PER_CONTAINER_MAX",
    "LOT_PACKS_MAX",
    "PACKS_PER_TX_MAX",
    "REASON_LENGTH_MAX",
    "SCANS_LISTED_MAX",
    "SHIPMENTS_PER_PACK_MAX",
    "SHIPMENT_ID_SIZE",
]

PACKS_PER_TX_MAX = 1000
SHIPMENTS_PER_PACK_MAX = 50
SCANS_LISTED_MAX = 32
# commission + (ship + receive or missing) per shipment + dispense or decommission + scans
HISTORY_LENGTH_MAX = 1 + 2 * SHIPMENTS_PER_PACK_MAX + 1 + SCANS_LISTED_MAX
ALERTS_PAGE_MAX = 1000
LOT_PACKS_MAX = 10_000
CODE_LENGTH_MAX = 20
REASON_LENGTH_MAX = 200
SHIPMENT_ID_SIZE = 32

# Containers. Shipping or receiving a container writes to every pack inside it, so what
# one transaction moves is bounded like a transaction of loose packs: a container with
# all it holds (its cases, their packs, itself) is at most ITEMS_PER_CONTAINER_MAX
# items, and the loose packs, containers and contents a shipment or receipt moves at
# most ITEMS_MOVED_PER_TX_MAX. The work a container saves in bytes was paid when it was
# packed: every pack in it was listed by an aggregation.
ITEMS_PER_CONTAINER_MAX = 1000
ITEMS_MOVED_PER_TX_MAX = 1000
CONTAINER_DEPTH_MAX = 3
"""Packs in cases in pallets in a shipping container."""
CONTAINER_EVENTS_MAX = 64
"""Aggregations, disaggregations and shipments a container's history holds."""
