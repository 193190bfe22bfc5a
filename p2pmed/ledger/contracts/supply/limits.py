"""The supply rules' limits: each bounds the work or the state one transaction or one pack
can cost. Rules read them as ``limits.NAME`` when they run, so a test may lower one."""

from __future__ import annotations

__all__ = [
    "ALERTS_PAGE_MAX",
    "CODE_LENGTH_MAX",
    "HISTORY_LENGTH_MAX",
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
