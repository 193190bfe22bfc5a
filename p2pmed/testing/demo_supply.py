"""The demo's supply-chain scene, after the manufacturer's first packs: a pallet shipped as one
unit, a suspect product found and quarantined, and the diversion signal a validator's scan finds
(flags are raised on complete weeks, so the scene previews the closed week: see 12c).

It runs on the demo's live network through one node's RPC socket, every transaction signed by
the party that acts and waited for (``p2pmed.client.records.submit``): about ten blocks.
"""

from __future__ import annotations

from collections.abc import Callable

from p2pmed.client.records import submit
from p2pmed.crypto import SigningKey
from p2pmed.ledger.contracts.supply import (
    PackRef,
    SupplyAggregate,
    SupplyCommission,
    SupplyReceive,
    SupplyShip,
    SupplyVerify,
    SuspectQuarantine,
    gs1_check_digit,
)
from p2pmed.ledger.contracts.supply.thresholds import WEEK_MS
from p2pmed.rpc.client import RpcClient

__all__ = ["supply_scene"]

LOT, EXPIRY = "LOT-8", "2031-12-31"


def _sscc(company_prefix: str, serial_reference: int) -> str:
    digits = f"0{company_prefix}{serial_reference:0{16 - len(company_prefix)}d}"
    return digits + gs1_check_digit(digits)


def supply_scene(
    node: RpcClient,
    manufacturer: SigningKey,
    gtin: str,
    distributor: SigningKey,
    pharmacy: SigningKey,
    out: Callable[[str], None],
) -> None:
    """Print lines 12a-12c of the demo; ``gtin`` carries the manufacturer's company prefix."""
    packs = tuple(PackRef(gtin, f"PAL{serial:03d}") for serial in range(12))
    case, pallet = _sscc(gtin[1:8], 1), _sscc(gtin[1:8], 2)
    submit(node, manufacturer, "supply.commission", SupplyCommission(gtin, LOT, EXPIRY, tuple(p.serial for p in packs)))
    submit(node, manufacturer, "supply.aggregate", SupplyAggregate(case, packs[:6], ()))
    submit(node, manufacturer, "supply.aggregate", SupplyAggregate(pallet, (), (case,)))
    loose = packs[6:]
    shipped = submit(node, manufacturer, "supply.ship", SupplyShip(distributor.public_key, loose, (pallet,)))
    shipment = bytes.fromhex(shipped["tx_id"])
    submit(node, distributor, "supply.receive", SupplyReceive(shipment, loose, (), (pallet,)))
    inside = node.call("supply.container", sscc=pallet)
    ship = next(
        e for e in node.call("supply.trace", gtin=gtin, serial=packs[0].serial)["events"] if e["kind"] == "ship"
    )
    out(
        f"12a. the manufacturer packs 6 packs into case (00){case} and the case onto pallet (00){pallet}, and ships"
        f" the pallet as one unit with 6 loose packs; the distributor receives it: the pallet holds"
        f" {len(inside['packs'])} packs, each moved with it ({ship['detail']})"
    )

    suspect = loose[0]
    submit(node, distributor, "supply.verify", SupplyVerify(gtin, suspect.serial, LOT, "2032-06-30"))
    scanned = node.call("supply.alerts", start=node.call("supply.alerts")["count"] - 1)["alerts"][0]
    case_id = submit(node, distributor, "supply.suspect.quarantine", SuspectQuarantine((suspect,), "expiry misprinted"))
    verdict = node.call("supply.verify", gtin=gtin, serial=suspect.serial)
    out(
        f"12b. the distributor scans pack {suspect.serial}: its printed expiry is not the one commissioned, a"
        f" {scanned['kind']} alert; it quarantines the pack (case {case_id['tx_id'][:16]}…), and a scan now says:"
        f" {verdict['status']}"
    )

    onward = loose[1:]
    sent = submit(node, distributor, "supply.ship", SupplyShip(pharmacy.public_key, onward))
    submit(node, pharmacy, "supply.receive", SupplyReceive(bytes.fromhex(sent["tx_id"]), (), onward))
    missing = node.call("supply.alerts", start=node.call("supply.alerts")["count"] - len(onward))["alerts"]
    # Flags are raised on complete weeks only; the demo cannot wait for this one to close, so it asks the
    # node what the same rules find on today's committed state at the time the week has closed.
    shipped_ms = node.call("supply.trace", gtin=gtin, serial=onward[0].serial)["events"][-2]["time_ms"]
    week_closed_ms = (shipped_ms // WEEK_MS + 1) * WEEK_MS
    candidates = node.call("supply.flag_candidates", at_ms=week_closed_ms)["candidates"]
    found = next(c for c in candidates if c["subject"]["rule"] == "transit-loss")
    out(
        f"12c. the distributor ships the other {len(onward)} loose packs to the pharmacy, which reports all of them"
        f" missing on arrival ({len(missing)} {missing[0]['kind']} alerts); once the week closes, a validator's scan"
        f" finds a {found['subject']['rule']} signal against the distributor, and a diversion flag it raises will be"
        f" recomputed by every node: {found['evidence']['summary']}"
    )
